/*
 * fuzz_wire.c: libFuzzer target for wire_parse(), the JSON every client
 * and peer can send.  Whatever the bytes, parsing must not crash, leak or
 * read out of bounds, and what parses must build back into JSON that
 * parses the same way.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "wire.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A node's defaults in a cluster of three. */
static const struct wire_limits limits = { 4096, 2 * 3 + WIRE_ORIGIN_SLACK };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct wire_in	 w, again;
	const char	*code;
	char		*why, *json;

	if (wire_parse((const char *)data, len, &limits, &w, &code, &why) == -1) {
		if (code == NULL || why == NULL)
			abort();
		free(why);
		return (0);
	}
	if (w.type == WIRE_CHAT && w.replicated && w.has_identity) {
		json = wire_chat(&w.msg, 1);
		if (wire_parse(json, strlen(json), NULL, &again, &code,
		    &why) == -1 || strcmp(again.msg.text, w.msg.text) != 0 ||
		    again.msg.seq != w.msg.seq)
			abort();
		wire_in_clear(&again);
		free(json);
	}
	wire_in_clear(&w);
	return (0);
}
