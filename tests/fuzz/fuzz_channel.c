/*
 * fuzz_channel.c: libFuzzer target for the channel's decoding side: the
 * bytes a broken or hostile worker could write to the master.  Frames are
 * cut as the channel cuts them and go through msgpack-c and the typed
 * getters the master and the workers use; nothing may crash, leak, read
 * out of bounds or allocate more than the frame's size calls for.
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

/*
 * Frames as the channel reads them: chan_frame_len() finds where each ends
 * without allocating, and only a whole frame goes to msgpack-c, which must
 * then agree on its length.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	msgpack_unpacked	 up;
	size_t			 off = 0, used;
	ssize_t			 n;

	msgpack_unpacked_init(&up);
	while (off < len && (n = chan_frame_len(data + off, len - off)) > 0) {
		if ((size_t)n > len - off)
			abort();
		used = 0;
		if (msgpack_unpack_next(&up, (const char *)data + off, (size_t)n,
		    &used) != MSGPACK_UNPACK_SUCCESS)
			break;		/* nested too deep for msgpack-c */
		if (used != (size_t)n)
			abort();
		poke(&up.data);
		off += (size_t)n;
	}
	msgpack_unpacked_destroy(&up);
	return (0);
}
