/* Fuzzes the decoders of untrusted change data: the input is one BSON document, decoded
 * as an oplog entry (through a decoder that keeps transactions across inputs), as a
 * change-stream event and as an update body. Nothing may crash or leak. */
#include <stddef.h>
#include <stdint.h>

#include "lm_change.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lm_oplog_decoder_t dec;
    static int inputs;
    bson_t doc, specs = BSON_INITIALIZER;
    lm_oplist_t ops = {0};
    lm_error_t err;
    lm_optime_t ts, prev = {1, 1};
    int64_t wall;
    bool noop;

    if (!bson_init_static(&doc, data, size))
        return 0;
    lm_oplog_decode(&dec, &doc, prev, &ops, &ts, &wall, &noop, &err);
    lm_event_decode(&doc, &ops, &ts, &wall, &err);
    lm_change_translate_update(&doc, &specs);
    lm_change_translate_description(&doc, &specs);
    lm_oplog_decoder_hold(&dec, &prev);
    lm_oplist_clear(&ops);
    bson_destroy(&specs);
    if (++inputs % 1000 == 0) { /* held transactions must not grow without bound */
        lm_oplog_decoder_cleanup(&dec);
        lm_oplog_decoder_init(&dec);
    }
    return 0;
}
