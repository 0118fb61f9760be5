#include "common/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fm_listen_parse(const char *s, char host[FM_HOST_BUFSZ], uint16_t *port,
                    struct fm_err *err)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || (size_t)(colon - s) >= FM_HOST_BUFSZ)
        return fm_err_set(err, "expected ADDR:PORT, got '%s'", s);
    char *end = NULL;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || colon[1] == '-' || colon[1] == '+' || p > 65535)
        return fm_err_set(err, "expected a port 0-65535 after the last ':', got '%s'", s);
    size_t len = (size_t)(colon - s);
    bool bracketed = len >= 2 && s[0] == '[' && s[len - 1] == ']';
    memcpy(host, s + bracketed, len - 2 * bracketed);
    host[len - 2 * bracketed] = '\0';
    if (!bracketed && strcmp(host, "localhost") == 0)
        snprintf(host, FM_HOST_BUFSZ, "127.0.0.1");
    unsigned char a[sizeof(struct in6_addr)];
    if (inet_pton(bracketed ? AF_INET6 : AF_INET, host, a) != 1)
        return fm_err_set(err,
                          "expected an IPv4 address, an IPv6 address in brackets or localhost,"
                          " got '%.*s'",
                          (int)len, s);
    *port = (uint16_t)p;
    return 0;
}

socklen_t fm_sockaddr_of(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return sizeof *v6;
    }
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return sizeof *v4;
    }
    return 0;
}

void fm_host_port(const char *host, unsigned port, char out[FM_HOST_PORT_BUFSZ])
{
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out, FM_HOST_PORT_BUFSZ, "%s%.*s%s:%u", v6 ? "[" : "", FM_HOST_BUFSZ - 1, host,
             v6 ? "]" : "", port);
}
