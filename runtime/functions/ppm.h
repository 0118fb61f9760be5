/*
 * Binary PPM (P6, maxval 255) for the image-pipeline functions. Header-only so that each
 * function stays one standalone program.
 */
#ifndef FN_PPM_H
#define FN_PPM_H

#include <stdio.h>
#include <stdlib.h>

#define PPM_MAX_SIDE 16384
#define PPM_MAX_BYTES ((size_t)64 * 1024 * 1024)

struct ppm {
    long w, h;
    unsigned char *px; /* w * h * 3 bytes, RGB */
};

static inline int ppm_skip_space(FILE *f)
{
    int c;
    while ((c = getc(f)) != EOF) {
        if (c == '#')
            while ((c = getc(f)) != EOF && c != '\n')
                ;
        else if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return ungetc(c, f);
    }
    return EOF;
}

static inline long ppm_number(FILE *f)
{
    long v = 0;
    int c, digits = 0;
    if (ppm_skip_space(f) == EOF)
        return -1;
    while ((c = getc(f)) != EOF && c >= '0' && c <= '9' && digits++ < 9)
        v = v * 10 + (c - '0');
    return digits ? v : -1;
}

/* Reads a P6 image; returns 0, or -1 with a message on stderr. */
static inline int ppm_read(FILE *f, struct ppm *img)
{
    if (getc(f) != 'P' || getc(f) != '6') {
        fputs("not a binary PPM (P6) image\n", stderr);
        return -1;
    }
    long w = ppm_number(f), h = ppm_number(f), max = ppm_number(f);
    if (w < 1 || h < 1 || w > PPM_MAX_SIDE || h > PPM_MAX_SIDE || max != 255 ||
        (size_t)w * (size_t)h * 3 > PPM_MAX_BYTES) {
        fputs("unsupported PPM header (sides 1-16384, maxval 255)\n", stderr);
        return -1;
    }
    size_t n = (size_t)w * (size_t)h * 3;
    img->px = malloc(n);
    if (img->px == NULL || fread(img->px, 1, n, f) != n) {
        fputs("truncated PPM image\n", stderr);
        free(img->px);
        return -1;
    }
    img->w = w;
    img->h = h;
    return 0;
}

static inline int ppm_write(FILE *f, const struct ppm *img)
{
    size_t n = (size_t)img->w * (size_t)img->h * 3;
    fprintf(f, "P6\n%ld %ld\n255\n", img->w, img->h);
    return fwrite(img->px, 1, n, f) == n && fflush(f) == 0 ? 0 : -1;
}

#endif
