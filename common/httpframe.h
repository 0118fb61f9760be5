#ifndef FM_HTTPFRAME_H
#define FM_HTTPFRAME_H

/*
 * How meterd and faasrun serve read a request's framing.
 *
 * What they refuse before they read a request's body: a body they would not read as its
 * sender meant. Two Content-Length headers that disagree, or a
 * Content-Length beside a Transfer-Encoding, let a proxy in between split the stream
 * elsewhere than the server does and slip a request past it; a compressed body would be
 * read as it came.
 */

#include <microhttpd.h>
#include <stddef.h>

/**
 * The status that refuses c's request, with why it is refused into why; 0 when it may be
 * read. 400 for its framing, 415 for a Content-Encoding other than identity.
 */
unsigned fm_http_framing_refused(struct MHD_Connection *c, char *why, size_t n);

/**
 * libmicrohttpd's unescape callback (MHD_OPTION_UNESCAPE_CALLBACK) for the path and the
 * query arguments: %XX is decoded, but for %00, which stays as it was written. Decoded, it
 * would end the C string there, and "/invoke/acme/hello%00junk" would run acme/hello.
 * Left, it fails every name, id and date it stands in. Returns s's new length.
 */
size_t fm_http_unescape(void *cls, struct MHD_Connection *c, char *s);

#endif
