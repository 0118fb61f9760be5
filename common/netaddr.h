#ifndef FM_NETADDR_H
#define FM_NETADDR_H

#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

/*
 * Listening addresses, as meterd and faasrun serve take them: "ADDR:PORT", where ADDR is an
 * IPv4 address, an IPv6 address in brackets ("[::1]:8080"), or localhost (127.0.0.1).
 */

/* Room for an address without brackets, and for "[ADDR]:PORT". */
#define FM_HOST_BUFSZ 64
#define FM_HOST_PORT_BUFSZ (FM_HOST_BUFSZ + 8)

/**
 * Split s into its address (without brackets, localhost made 127.0.0.1) and port.
 * @return 0, or -1 with err set to a message naming what was wrong, with s or its address
 *         quoted ("expected ADDR:PORT, got '...'")
 */
int fm_listen_parse(const char *s, char host[FM_HOST_BUFSZ], uint16_t *port,
                    struct fm_err *err);

/**
 * The socket address of host (an IPv4 or IPv6 address, no brackets) and port.
 * @return its length, or 0 when host is neither
 */
socklen_t fm_sockaddr_of(const char *host, uint16_t port, struct sockaddr_storage *out);

/** "ADDR:PORT", the address of an IPv6 one in brackets. */
void fm_host_port(const char *host, unsigned port, char out[FM_HOST_PORT_BUFSZ]);

#endif
