/* Fuzzes one lm_proto decoder (LM_FUZZ_MSG picks it, one harness per message): whatever
 * decodes must encode, and decode again to the same bytes; nothing may crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lm_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROUND_TRIP(type, decode, encode, cleanup)                                                  \
    do {                                                                                           \
        type *a = calloc(1, sizeof(type)), *b = calloc(1, sizeof(type));                           \
        lm_error_t err;                                                                            \
        if (decode((const char *)data, size, a, &err)) {                                           \
            lm_strbuf_t one, two;                                                                  \
            lm_strbuf_init(&one, 1u << 20);                                                        \
            lm_strbuf_init(&two, 1u << 20);                                                        \
            if (!encode(a, &one, &err) ||                                                          \
                !decode(lm_strbuf_str(&one), strlen(lm_strbuf_str(&one)), b, &err) ||              \
                !encode(b, &two, &err) || strcmp(lm_strbuf_str(&one), lm_strbuf_str(&two)) != 0)   \
                __builtin_trap();                                                                  \
            lm_strbuf_cleanup(&one);                                                               \
            lm_strbuf_cleanup(&two);                                                               \
        }                                                                                          \
        cleanup(a);                                                                                \
        cleanup(b);                                                                                \
        free(a);                                                                                   \
        free(b);                                                                                   \
    } while (0)

__attribute__((unused)) static void no_cleanup(void *p)
{
    (void)p;
}

__attribute__((unused)) static bool token_decode(const char *s, size_t n, lm_proto_link_token_t *t,
                                                 lm_error_t *err)
{
    return lm_proto_link_token_decode(s, n, t, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#if LM_FUZZ_MSG == 0
    ROUND_TRIP(lm_proto_link_token_t, token_decode, lm_proto_link_token_encode, no_cleanup);
#elif LM_FUZZ_MSG == 1
    ROUND_TRIP(lm_proto_register_req_t, lm_proto_register_req_decode, lm_proto_register_req_encode,
               no_cleanup);
#elif LM_FUZZ_MSG == 2
    ROUND_TRIP(lm_proto_register_resp_t, lm_proto_register_resp_decode,
               lm_proto_register_resp_encode, lm_proto_register_resp_clear);
#elif LM_FUZZ_MSG == 3
    ROUND_TRIP(lm_proto_heartbeat_t, lm_proto_heartbeat_decode, lm_proto_heartbeat_encode,
               no_cleanup);
#elif LM_FUZZ_MSG == 4
    ROUND_TRIP(lm_proto_assignments_t, lm_proto_assignments_decode, lm_proto_assignments_encode,
               lm_proto_assignments_cleanup);
#else
    ROUND_TRIP(lm_proto_status_t, lm_proto_status_decode, lm_proto_status_encode,
               lm_proto_status_cleanup);
#endif
    return 0;
}
