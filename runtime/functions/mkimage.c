/* mkimage W H: writes a W x H test image (P6 PPM) with gradients and a checkerboard. */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/functions/ppm.h"

int main(int argc, char **argv)
{
    long w = argc > 1 ? strtol(argv[1], NULL, 10) : 640;
    long h = argc > 2 ? strtol(argv[2], NULL, 10) : 480;
    if (w < 1 || h < 1 || w > PPM_MAX_SIDE || h > PPM_MAX_SIDE) {
        fputs("usage: mkimage W H (sides 1-16384)\n", stderr);
        return 2;
    }
    struct ppm img = {w, h, malloc((size_t)w * (size_t)h * 3)};
    if (img.px == NULL)
        return 1;
    for (long y = 0; y < h; y++) {
        for (long x = 0; x < w; x++) {
            unsigned char *p = img.px + ((size_t)y * (size_t)w + (size_t)x) * 3;
            int check = ((x / 32) + (y / 32)) % 2;
            p[0] = (unsigned char)(255 * x / w);
            p[1] = (unsigned char)(255 * y / h);
            p[2] = (unsigned char)(check ? 200 : 60);
        }
    }
    int rc = ppm_write(stdout, &img);
    free(img.px);
    return rc == 0 ? 0 : 1;
}
