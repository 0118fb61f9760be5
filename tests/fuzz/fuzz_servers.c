/* A server catalog file from any text: bill_servers_parse accepts it or says why. */

#include "billing/server.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bill_server *servers = NULL;
    size_t n = 0;
    if (bill_servers_parse((const char *)data, size, "fuzz", &servers, &n, NULL) == BILL_OK)
        bill_servers_free(servers, n);
    return 0;
}
