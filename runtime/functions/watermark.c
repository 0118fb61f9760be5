/*
 * watermark: reads a P6 PPM on stdin and writes it with a visible mark: the bottom-right
 * block (a quarter of the shorter side) is inverted and framed in white. Runs in exec or
 * warm mode (see warm.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/functions/ppm.h"
#include "runtime/functions/warm.h"

static int watermark(const struct warm_request *req, FILE *out, void *ctx)
{
    (void)ctx;
    struct ppm img = {0};
    if (ppm_read(req->in, &img) != 0)
        return 1;
    long side = (img.w < img.h ? img.w : img.h) / 4;
    if (side < 1)
        side = 1;
    for (long y = img.h - side; y < img.h; y++) {
        for (long x = img.w - side; x < img.w; x++) {
            unsigned char *p = img.px + ((size_t)y * (size_t)img.w + (size_t)x) * 3;
            int frame = y == img.h - side || x == img.w - side;
            for (int c = 0; c < 3; c++)
                p[c] = frame ? 255 : (unsigned char)(255 - p[c]);
        }
    }
    int rc = ppm_write(out, &img);
    free(img.px);
    return rc == 0 ? 0 : 1;
}

int main(void)
{
    return warm_run(watermark, NULL);
}
