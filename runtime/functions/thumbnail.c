/*
 * thumbnail [--width W]: reads a P6 PPM on stdin and writes it scaled down to W pixels wide
 * (default 128), keeping the aspect ratio. Each output pixel averages the box of input
 * pixels it covers. Images already narrower are passed through unchanged. Runs in exec or
 * warm mode (see warm.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/functions/ppm.h"
#include "runtime/functions/warm.h"

static void box_average(const struct ppm *in, struct ppm *out)
{
    for (long oy = 0; oy < out->h; oy++) {
        long y0 = oy * in->h / out->h, y1 = (oy + 1) * in->h / out->h;
        if (y1 <= y0)
            y1 = y0 + 1;
        for (long ox = 0; ox < out->w; ox++) {
            long x0 = ox * in->w / out->w, x1 = (ox + 1) * in->w / out->w;
            if (x1 <= x0)
                x1 = x0 + 1;
            unsigned long sum[3] = {0, 0, 0}, n = 0;
            for (long y = y0; y < y1; y++)
                for (long x = x0; x < x1; x++, n++)
                    for (int c = 0; c < 3; c++)
                        sum[c] += in->px[((size_t)y * (size_t)in->w + (size_t)x) * 3 + (size_t)c];
            unsigned char *p = out->px + ((size_t)oy * (size_t)out->w + (size_t)ox) * 3;
            for (int c = 0; c < 3; c++)
                p[c] = (unsigned char)((sum[c] + n / 2) / n);
        }
    }
}

static int thumbnail(const struct warm_request *req, FILE *out_f, void *ctx)
{
    long width = *(const long *)ctx;
    struct ppm in = {0};
    if (ppm_read(req->in, &in) != 0)
        return 1;
    if (in.w <= width) {
        int rc = ppm_write(out_f, &in);
        free(in.px);
        return rc == 0 ? 0 : 1;
    }
    long h = (in.h * width + in.w / 2) / in.w;
    struct ppm out = {width, h > 0 ? h : 1, NULL};
    out.px = malloc((size_t)out.w * (size_t)out.h * 3);
    if (out.px == NULL) {
        fputs("thumbnail: out of memory\n", stderr);
        free(in.px);
        return 137;
    }
    box_average(&in, &out);
    int rc = ppm_write(out_f, &out);
    free(in.px);
    free(out.px);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    long width = 128;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--width") == 0)
            width = strtol(argv[i + 1], NULL, 10);
    if (width < 1 || width > PPM_MAX_SIDE) {
        fputs("thumbnail: --width must be 1-16384\n", stderr);
        return 2;
    }
    return warm_run(thumbnail, &width);
}
