/*
 * fuzz_channel.c: libFuzzer target for the channel's decoding side: the
 * bytes a broken or hostile worker could write to the master.  Frames go
 * through the same msgpack unpacker and the typed getters the master and
 * the workers use; nothing may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "nodetalk.h"
#include "channel.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
poke(const msgpack_object *o)
{
	struct nt_msg	 m;
	struct nt_have	 h;
	uint64_t	 u;
	int64_t		 i;
	int		 b;

	frame_get_u64(o, "t", &u);
	frame_get_i64(o, "ts", &i);
	frame_get_bool(o, "up", &b);
	free(frame_get_str(o, "peer"));
	if (frame_get_msg(o, "msg", &m) == 0) {
		if (m.from == NULL || m.text == NULL || m.seq == 0)
			abort();
		msg_clear(&m);
	}
	if (frame_get_have(o, "have", &h) == 0)
		have_clear(&h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	msgpack_unpacker	 unp;
	msgpack_unpacked	 up;

	if (!msgpack_unpacker_init(&unp, 1024))
		return (0);
	if (!msgpack_unpacker_reserve_buffer(&unp, len)) {
		msgpack_unpacker_destroy(&unp);
		return (0);
	}
	memcpy(msgpack_unpacker_buffer(&unp), data, len);
	msgpack_unpacker_buffer_consumed(&unp, len);
	msgpack_unpacked_init(&up);
	while (msgpack_unpacker_next(&unp, &up) == MSGPACK_UNPACK_SUCCESS)
		poke(&up.data);
	msgpack_unpacked_destroy(&up);
	msgpack_unpacker_destroy(&unp);
	return (0);
}
