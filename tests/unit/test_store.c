/*
 * test_store.c: the message store and its log, against real files in a
 * fresh mkdtemp() directory per test.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include <msgpack.h>

#include "nodetalk.h"
#include "channel.h"
#include "store.h"

/* Each test owns root/; the store's data_dir is root/data. */
struct fixture {
	char	 root[256];
	char	 data[300];
	char	 log[320];
};

static void
rmtree(const char *path)
{
	DIR		*d;
	struct dirent	*de;
	char		 sub[PATH_MAX];

	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			rmtree(sub);
		}
		closedir(d);
		rmdir(path);
	} else
		unlink(path);
}

static int
setup(void **state)
{
	struct fixture	*f;
	const char	*tmp;

	f = xcalloc(1, sizeof(*f));
	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0' ||
	    strlen(tmp) > 200)
		tmp = "/tmp";
	snprintf(f->root, sizeof(f->root), "%s/test_store.XXXXXX", tmp);
	if (mkdtemp(f->root) == NULL) {
		free(f);
		return (-1);
	}
	snprintf(f->data, sizeof(f->data), "%s/data", f->root);
	snprintf(f->log, sizeof(f->log), "%s/messages.log", f->data);
	*state = f;
	return (0);
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	rmtree(f->root);
	free(f);
	return (0);
}

/* A message with a text that names it ("A-2"), so mix-ups show. */
static struct nt_msg *
mk(const char *origin, uint64_t seq, uint64_t lamport, const char *cid)
{
	struct nt_msg	*m;

	m = msg_new();
	snprintf(m->origin, sizeof(m->origin), "%s", origin);
	m->seq = seq;
	m->lamport = lamport;
	m->ts = 1764000000000LL + (int64_t)lamport;
	m->from = xstrdup("kamlesh");
	xasprintf(&m->text, "%s-%llu", origin, (unsigned long long)seq);
	m->client_id = cid != NULL ? xstrdup(cid) : NULL;
	return (m);
}

static int
add(struct store *s, const char *origin, uint64_t seq, uint64_t lamport,
    const char *cid)
{
	struct nt_msg	*m;
	int		 rv;

	m = mk(origin, seq, lamport, cid);
	rv = store_append(s, m);
	msg_free(m);
	/* Each add is a turn of its own: its record goes to the file. */
	if (store_write(s) == -1)
		fail_msg("store_write: %s", strerror(errno));
	return (rv);
}

static void
release_all(struct store *s)
{
	const struct nt_have	*h = store_have(s);
	size_t			 i;

	for (i = 0; i < h->n; i++)
		store_release(s, h->v[i].origin, h->v[i].seq);
}

static struct store *
open_ok(const char *dir)
{
	struct store	*s;
	char		*cause = NULL;

	if ((s = store_open(dir, FSYNC_BATCH, &cause)) == NULL)
		fail_msg("store_open %s: %s", dir, cause);
	return (s);
}

/* "A-1 A-2 B-1": every message, in cluster order (all released). */
static const char *
ids(struct store *s)
{
	static char		 buf[16384];
	struct store_cursor	 c;
	const struct nt_msg	*m;
	char			 id[64];
	size_t			 used = 0;

	release_all(s);
	buf[0] = '\0';
	store_cursor_init(&c, NULL, 0);
	while ((m = store_cursor_next(s, &c)) != NULL && used < sizeof(buf)) {
		msg_idstr(m, id, sizeof(id));
		used += snprintf(buf + used, sizeof(buf) - used, "%s%s",
		    used > 0 ? " " : "", id);
	}
	store_cursor_clear(&c);
	return (buf);
}

/* Every message, in cluster order, as copies (NULL-terminated). */
static struct nt_msg **
all_msgs(struct store *s)
{
	struct store_cursor	 c;
	const struct nt_msg	*m;
	struct nt_msg		**v;
	size_t			 n = 0;

	release_all(s);
	v = xcalloc(store_count(s) + 1, sizeof(*v));
	store_cursor_init(&c, NULL, 0);
	while ((m = store_cursor_next(s, &c)) != NULL)
		v[n++] = msg_dup(m);
	store_cursor_clear(&c);
	assert_int_equal(n, store_count(s));
	return (v);
}

static void
free_msgs(struct nt_msg **v)
{
	size_t	 i;

	for (i = 0; v[i] != NULL; i++)
		msg_free(v[i]);
	free(v);
}

static off_t
file_size(const char *path)
{
	struct stat	 st;

	assert_int_equal(stat(path, &st), 0);
	return (st.st_size);
}

static void
file_append(const char *path, const void *buf, size_t len)
{
	int	 fd;

	assert_true((fd = open(path, O_WRONLY | O_APPEND)) != -1);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* Append a well-formed record (right length, right crc) around payload. */
static void
file_append_record(const char *path, const void *payload, uint32_t len)
{
	unsigned char	 hdr[8];
	uint32_t	 crc;

	crc = crc32(0L, payload, len);
	hdr[0] = len >> 24; hdr[1] = len >> 16; hdr[2] = len >> 8; hdr[3] = len;
	hdr[4] = crc >> 24; hdr[5] = crc >> 16; hdr[6] = crc >> 8; hdr[7] = crc;
	file_append(path, hdr, sizeof(hdr));
	file_append(path, payload, len);
}

/*
 * Run the next store_open() with stderr in a file, to check what the log
 * said.  log.c writes its lines to fd 2.
 */
static struct store *
open_captured(struct fixture *f, char *out, size_t outlen)
{
	struct store	*s;
	char		 path[PATH_MAX];
	int		 fd, saved;
	ssize_t		 n;

	snprintf(path, sizeof(path), "%s/stderr", f->root);
	assert_true((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) != -1);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	s = open_ok(f->data);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return (s);
}

static void
test_append_order(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;

	s = open_ok(f->data);
	assert_int_equal(store_count(s), 0);
	assert_int_equal(store_dirty(s), 0);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	assert_int_equal(add(s, "C", 1, 5, NULL), 1);
	assert_int_equal(add(s, "B", 1, 3, NULL), 1);
	assert_int_equal(add(s, "A", 2, 2, NULL), 1);
	/* Same lamport as C-1: the origin breaks the tie. */
	assert_int_equal(add(s, "B", 2, 5, NULL), 1);
	assert_int_equal(add(s, "A", 3, 4, NULL), 1);
	/* A-3's clock goes back: each origin is merged in seq order. */
	assert_string_equal(ids(s), "A-1 A-2 B-1 A-3 B-2 C-1");
	assert_int_equal(store_count(s), 6);
	assert_int_equal(store_lamport(s), 5);

	assert_int_equal(store_dirty(s), 1);
	assert_int_equal(store_sync(s), 0);
	assert_int_equal(store_dirty(s), 0);
	assert_int_equal(store_sync(s), 0);
	assert_int_equal(store_log_size(s), file_size(f->log));
	store_close(s);
}

static void
assert_sorted(struct store *s)
{
	struct nt_msg	**v = all_msgs(s);
	size_t		  i;

	for (i = 1; v[i] != NULL; i++)
		assert_true(msg_cmp_order(v[i - 1], v[i]) < 0);
	free_msgs(v);
}

/* Many inserts anywhere in the order; the reopened store agrees. */
static void
test_order_random(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	static char	 before[16384];
	static const char *const origins[] = { "A", "B", "C" };
	uint64_t	 seq[3] = { 0, 0, 0 }, clock[3] = { 0, 0, 0 };
	unsigned int	 seed = 42;
	int		 i, o;

	/*
	 * Each origin's clock grows with its seq (the protocol's rule), by
	 * random steps, so the origins interleave every which way.
	 */
	s = open_ok(f->data);
	for (i = 0; i < 600; i++) {
		o = rand_r(&seed) % 3;
		clock[o] += 1 + rand_r(&seed) % 7;
		assert_int_equal(add(s, origins[o], ++seq[o], clock[o], NULL),
		    1);
	}
	assert_int_equal(store_count(s), 600);
	assert_sorted(s);
	snprintf(before, sizeof(before), "%s", ids(s));
	store_close(s);

	s = open_ok(f->data);
	assert_sorted(s);
	assert_string_equal(ids(s), before);
	store_close(s);
}

static void
test_duplicate_and_gap(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	struct nt_msg	*m;
	off_t		 size1;

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	size1 = store_log_size(s);
	assert_true(size1 > 8);

	/* A duplicate with other contents: the first copy stands. */
	m = mk("A", 1, 9, NULL);
	free(m->text);
	m->text = xstrdup("impostor");
	assert_int_equal(store_append(s, m), 0);
	msg_free(m);
	assert_string_equal(store_lookup(s, "A", 1)->text, "A-1");
	assert_int_equal(store_lamport(s), 1);

	assert_int_equal(add(s, "A", 3, 3, NULL), -2);
	assert_int_equal(add(s, "B", 2, 3, NULL), -2);
	assert_int_equal(store_count(s), 1);
	assert_int_equal(store_log_size(s), size1);
	assert_int_equal(file_size(f->log), size1);

	assert_int_equal(add(s, "A", 2, 2, NULL), 1);
	assert_int_equal(add(s, "A", 3, 3, NULL), 1);

	/* No identity, no record. */
	errno = 0;
	assert_int_equal(add(s, "B", 0, 4, NULL), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(add(s, "", 1, 4, NULL), -1);
	assert_int_equal(store_count(s), 3);
	store_close(s);
}

static void
test_have(void **state)
{
	struct fixture		*f = *state;
	struct store		*s;
	const struct nt_have	*h;

	s = open_ok(f->data);
	assert_int_equal(store_have(s)->n, 0);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	assert_int_equal(add(s, "B", 1, 2, NULL), 1);
	assert_int_equal(add(s, "A", 2, 3, NULL), 1);
	assert_int_equal(add(s, "A/seed", 1, 4, NULL), 1);
	assert_int_equal(add(s, "B", 3, 5, NULL), -2);
	h = store_have(s);
	assert_int_equal(h->n, 3);
	assert_int_equal(have_get(h, "A"), 2);
	assert_int_equal(have_get(h, "B"), 1);
	assert_int_equal(have_get(h, "A/seed"), 1);
	assert_int_equal(have_get(h, "C"), 0);
	store_close(s);
}

static void
test_lookup(void **state)
{
	struct fixture		*f = *state;
	struct store		*s;
	const struct nt_msg	*m;

	s = open_ok(f->data);
	assert_int_equal(add(s, "B", 1, 1, NULL), 1);
	assert_int_equal(add(s, "A", 1, 2, NULL), 1);
	assert_int_equal(add(s, "A", 2, 3, NULL), 1);
	assert_int_equal(add(s, "A", 3, 4, NULL), 1);

	m = store_lookup(s, "A", 2);
	assert_non_null(m);
	assert_string_equal(m->text, "A-2");
	assert_int_equal(m->seq, 2);
	assert_string_equal(store_lookup(s, "B", 1)->text, "B-1");
	assert_null(store_lookup(s, "A", 0));
	assert_null(store_lookup(s, "A", 4));
	assert_null(store_lookup(s, "Z", 1));
	store_close(s);
}

static void
test_lookup_client_id(void **state)
{
	struct fixture		*f = *state;
	struct store		*s;
	const struct nt_msg	*m;
	char			 cid[32];
	uint64_t		 seq;

	s = open_ok(f->data);
	assert_null(store_lookup_client_id(s, "A", "c-1"));
	assert_int_equal(add(s, "A", 1, 1, "c-1"), 1);
	assert_int_equal(add(s, "B", 1, 2, "c-1"), 1);
	assert_int_equal(add(s, "A", 2, 3, NULL), 1);
	assert_int_equal(add(s, "A", 3, 4, ""), 1);

	m = store_lookup_client_id(s, "A", "c-1");
	assert_non_null(m);
	assert_string_equal(m->origin, "A");
	assert_int_equal(m->seq, 1);
	assert_string_equal(store_lookup_client_id(s, "B", "c-1")->origin, "B");
	assert_null(store_lookup_client_id(s, "C", "c-1"));
	assert_null(store_lookup_client_id(s, "A", "c-2"));
	assert_null(store_lookup_client_id(s, "A", ""));
	/* The separator keeps "A"+"Bc-1" apart from "AB"+"c-1". */
	assert_null(store_lookup_client_id(s, "", "Ac-1"));

	/* Enough keys to grow the table several times. */
	for (seq = 4; seq < 500; seq++) {
		snprintf(cid, sizeof(cid), "k%llu", (unsigned long long)seq);
		assert_int_equal(add(s, "A", seq, seq + 1, cid), 1);
	}
	for (seq = 4; seq < 500; seq++) {
		snprintf(cid, sizeof(cid), "k%llu", (unsigned long long)seq);
		m = store_lookup_client_id(s, "A", cid);
		assert_non_null(m);
		assert_int_equal(m->seq, seq);
		assert_null(store_lookup_client_id(s, "B", cid));
	}
	assert_int_equal(store_lookup_client_id(s, "A", "c-1")->seq, 1);

	/* Only A's ids from now on: B's are gone, A's and new ones stay. */
	store_cid_origin(s, "A");
	assert_null(store_lookup_client_id(s, "B", "c-1"));
	assert_int_equal(store_lookup_client_id(s, "A", "k400")->seq, 400);
	assert_int_equal(add(s, "B", 2, 9000, "c-9"), 1);
	assert_int_equal(add(s, "C", 1, 9001, "c-9"), 1);
	assert_int_equal(add(s, "A", 500, 9002, "c-9"), 1);
	assert_null(store_lookup_client_id(s, "B", "c-9"));
	assert_null(store_lookup_client_id(s, "C", "c-9"));
	assert_int_equal(store_lookup_client_id(s, "A", "c-9")->seq, 500);
	store_close(s);

	/* Replayed: every id again, found once the table is built... */
	s = open_ok(f->data);
	assert_int_equal(store_lookup_client_id(s, "B", "c-9")->seq, 2);
	for (seq = 4; seq < 500; seq++) {
		snprintf(cid, sizeof(cid), "k%llu", (unsigned long long)seq);
		assert_int_equal(store_lookup_client_id(s, "A", cid)->seq, seq);
	}
	store_close(s);
	/* ...or only A's, when that is said before the first lookup. */
	s = open_ok(f->data);
	store_cid_origin(s, "A");
	assert_null(store_lookup_client_id(s, "B", "c-9"));
	assert_int_equal(store_lookup_client_id(s, "A", "c-9")->seq, 500);
	assert_int_equal(add(s, "A", 501, 9003, "c-10"), 1);
	assert_int_equal(store_lookup_client_id(s, "A", "c-10")->seq, 501);
	assert_int_equal(store_lookup_client_id(s, "A", "c-1")->seq, 1);
	store_close(s);
}

/* "A-1 B-1": what a cursor returns from here to its end. */
static const char *
walk(struct store *s, struct store_cursor *c)
{
	static char		 buf[4096];
	const struct nt_msg	*m;
	char			 id[64];
	size_t			 used = 0;

	buf[0] = '\0';
	while ((m = store_cursor_next(s, c)) != NULL && used < sizeof(buf)) {
		msg_idstr(m, id, sizeof(id));
		used += snprintf(buf + used, sizeof(buf) - used, "%s%s",
		    used > 0 ? " " : "", id);
	}
	return (buf);
}


/* Cursors: cluster order, from a have vector on, released messages only. */
static void
test_cursor(void **state)
{
	struct fixture		*f = *state;
	struct store		*s;
	struct store_cursor	 c;
	struct nt_have		 h = { NULL, 0 };

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	assert_int_equal(add(s, "B", 1, 2, NULL), 1);
	assert_int_equal(add(s, "A/seed", 1, 3, NULL), 1);
	assert_int_equal(add(s, "A", 2, 4, NULL), 1);
	assert_int_equal(add(s, "C", 1, 5, NULL), 1);

	/* Nothing is served before it is released (made durable). */
	store_cursor_init(&c, NULL, 0);
	assert_string_equal(walk(s, &c), "");
	store_release(s, "A", 1);
	assert_string_equal(walk(s, &c), "A-1");
	release_all(s);
	assert_string_equal(walk(s, &c), "B-1 A/seed-1 A-2 C-1");
	store_cursor_clear(&c);

	/* From a have vector; local-only origins left out for peers. */
	have_set(&h, "A", 1);
	store_cursor_init(&c, &h, CURSOR_NO_LOCAL);
	assert_int_equal(store_cursor_left(s, &c), 3);
	assert_string_equal(walk(s, &c), "B-1 A-2 C-1");
	assert_int_equal(store_cursor_left(s, &c), 0);
	store_cursor_clear(&c);

	/* A late message that sorts behind the cursor is its next one. */
	store_cursor_init(&c, NULL, 0);
	assert_non_null(store_cursor_next(s, &c));	/* */
	assert_non_null(store_cursor_next(s, &c));	/* B-1 */
	assert_non_null(store_cursor_next(s, &c));	/* A/seed-1 */
	assert_int_equal(add(s, "B", 2, 3, NULL), 1);
	assert_int_equal(add(s, "A", 3, 6, NULL), 1);
	store_release(s, "B", 2);
	assert_string_equal(walk(s, &c), "B-2 A-2 C-1");
	/* A-3 comes once released; the cursor waited for it. */
	store_release(s, "A", 3);
	assert_string_equal(walk(s, &c), "A-3");

	/* An origin it has not seen starts from its have vector. */
	have_clear(&h);
	have_set(&h, "D", 1);
	store_cursor_skip(s, &c, &h);
	assert_int_equal(add(s, "D", 1, 7, NULL), 1);
	assert_int_equal(add(s, "D", 2, 8, NULL), 1);
	release_all(s);
	assert_string_equal(walk(s, &c), "D-2");
	store_cursor_have(s, &c, &h);
	assert_int_equal(have_get(&h, "A"), 3);
	assert_int_equal(have_get(&h, "D"), 2);
	assert_int_equal(have_get(&h, "A/seed"), 1);
	store_cursor_clear(&c);
	have_clear(&h);
	store_close(s);
}

/*
 * A join without since: the newest n, and whether older ones exist.  A
 * page: the limit messages just before a message, oldest first.
 */
static void
test_newest_and_pages(void **state)
{
	struct fixture		*f = *state;
	struct store		*s;
	struct store_cursor	 c;

	s = open_ok(f->data);
	/* Cluster order: A-1 B-1 A-2 B-2 C-1 A-3 B-3 A/seed-1 */
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	assert_int_equal(add(s, "B", 1, 2, NULL), 1);
	assert_int_equal(add(s, "A", 2, 3, NULL), 1);
	assert_int_equal(add(s, "B", 2, 3, NULL), 1);
	assert_int_equal(add(s, "C", 1, 4, NULL), 1);
	assert_int_equal(add(s, "A", 3, 6, NULL), 1);
	assert_int_equal(add(s, "B", 3, 7, NULL), 1);
	assert_int_equal(add(s, "A/seed", 1, 8, NULL), 1);
	release_all(s);
	assert_string_equal(ids(s),
	    "A-1 B-1 A-2 B-2 C-1 A-3 B-3 A/seed-1");

	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_newest(s, &c, 3), 1);
	assert_string_equal(walk(s, &c), "A-3 B-3 A/seed-1");
	store_cursor_clear(&c);
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_newest(s, &c, 8), 0);
	assert_int_equal(store_cursor_left(s, &c), 8);
	store_cursor_clear(&c);
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_newest(s, &c, 100), 0);
	assert_string_equal(walk(s, &c),
	    "A-1 B-1 A-2 B-2 C-1 A-3 B-3 A/seed-1");
	store_cursor_clear(&c);
	/* 0: everything. */
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_newest(s, &c, 0), 0);
	assert_int_equal(store_cursor_left(s, &c), 8);
	store_cursor_clear(&c);

	/* The newest go on with what is stored after the join began. */
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_newest(s, &c, 2), 1);
	assert_int_equal(add(s, "C", 2, 9, NULL), 1);
	release_all(s);
	assert_string_equal(walk(s, &c), "B-3 A/seed-1 C-2");
	store_cursor_clear(&c);

	/* Pages back from the newest, each before the first of the last. */
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_before(s, &c, NULL, 0, 0, 3), 1);
	assert_string_equal(walk(s, &c), "B-3 A/seed-1 C-2");
	store_cursor_clear(&c);
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_before(s, &c, "B", 3, 0, 3), 1);
	assert_string_equal(walk(s, &c), "B-2 C-1 A-3");
	/* A page ends where it was asked: later messages are not in it. */
	assert_int_equal(add(s, "A", 4, 10, NULL), 1);
	release_all(s);
	assert_string_equal(walk(s, &c), "");
	store_cursor_clear(&c);
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_before(s, &c, "B", 2, 0, 3), 0);
	assert_string_equal(walk(s, &c), "A-1 B-1 A-2");
	store_cursor_clear(&c);
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_before(s, &c, "A", 1, 0, 3), 0);
	assert_string_equal(walk(s, &c), "");
	store_cursor_clear(&c);

	/*
	 * A message this node does not hold (another node's local-only
	 * origin, or one ahead of us) is placed by its lamport: between
	 * B-2 (3) and C-1 (4) sorts "Bz" at 3; without lamport, the end.
	 */
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_before(s, &c, "Bz", 5, 3, 2), 1);
	assert_string_equal(walk(s, &c), "A-2 B-2");
	store_cursor_clear(&c);
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_before(s, &c, "B", 9, 0, 2), 1);
	assert_string_equal(walk(s, &c), "C-2 A-4");
	store_cursor_clear(&c);

	/* Not yet released is not there, for pages and newest alike. */
	assert_int_equal(add(s, "A", 5, 11, NULL), 1);
	store_cursor_init(&c, NULL, 0);
	assert_int_equal(store_cursor_before(s, &c, "A", 5, 0, 1), 1);
	assert_string_equal(walk(s, &c), "A-4");
	store_cursor_clear(&c);
	store_close(s);
}

/*
 * The index file: a restart reads it instead of decoding every record,
 * and whatever of it is missing, torn or wrong is rebuilt from the log;
 * the store is the same either way.
 */
static void
test_index_file(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	char		 idx[400], before[16384];
	unsigned char	 ent[48];
	uLong		 crc;
	off_t		 size;
	int		 fd, i;

	snprintf(idx, sizeof(idx), "%s/messages.idx", f->data);
	s = open_ok(f->data);
	for (i = 1; i <= 300; i++)
		assert_int_equal(add(s, i % 2 ? "A" : "B", (i + 1) / 2, i,
		    i % 3 ? NULL : "cid"), 1);
	assert_int_equal(store_sync(s), 0);
	snprintf(before, sizeof(before), "%s", ids(s));
	assert_int_equal(store_stop(s, &(char *){ NULL }), 0);
	store_close(s);
	/* A header, two origins and 300 records of 48 bytes. */
	assert_int_equal(file_size(idx), 48 * (1 + 2 + 300));

	/* As it was; the client id hash came back too. */
	s = open_ok(f->data);
	assert_string_equal(ids(s), before);
	assert_non_null(store_lookup_client_id(s, "A", "cid"));
	assert_int_equal(store_lamport(s), 300);
	store_close(s);

	/*
	 * A restart takes the fields from the index, not from the records:
	 * an entry made to say lamport 777 (its CRC made to match) is
	 * believed where it matches its record's offset, length and CRC.
	 */
	fd = open(idx, O_RDWR);
	assert_true(fd != -1);
	assert_int_equal(pread(fd, ent, 48, 48 * 302), 48);
	ent[24] = 777 & 0xff;
	ent[25] = 777 >> 8;
	crc = crc32(0L, ent, 44);
	ent[44] = crc;
	ent[45] = crc >> 8;
	ent[46] = crc >> 16;
	ent[47] = crc >> 24;
	assert_int_equal(pwrite(fd, ent, 48, 48 * 302), 48);
	close(fd);
	s = open_ok(f->data);
	assert_int_equal(store_lamport(s), 777);
	store_close(s);

	/* Gone: rebuilt. */
	assert_int_equal(unlink(idx), 0);
	s = open_ok(f->data);
	assert_string_equal(ids(s), before);
	store_close(s);
	assert_int_equal(file_size(idx), 48 * (1 + 2 + 300));

	/* Torn in the middle of an entry: the rest is rebuilt. */
	assert_int_equal(truncate(idx, 48 * 100 + 20), 0);
	s = open_ok(f->data);
	assert_string_equal(ids(s), before);
	assert_int_equal(store_count(s), 300);
	store_close(s);
	assert_int_equal(file_size(idx), 48 * (1 + 2 + 300));

	/* A damaged entry (its own CRC fails): it and the rest are rebuilt. */
	fd = open(idx, O_RDWR);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, "\xff\xff", 2, 48 * 50 + 24), 2);
	close(fd);
	s = open_ok(f->data);
	assert_string_equal(ids(s), before);
	assert_int_equal(store_lamport(s), 300);
	store_close(s);

	/* Garbage instead of the header: started anew. */
	fd = open(idx, O_RDWR);
	assert_int_equal(pwrite(fd, "garbage!", 8, 0), 8);
	close(fd);
	s = open_ok(f->data);
	assert_string_equal(ids(s), before);
	store_close(s);

	/* The log is shorter than the index says (a power cut): cut back. */
	size = file_size(f->log);
	assert_int_equal(truncate(f->log, size - 1), 0);
	s = open_ok(f->data);
	assert_int_equal(store_count(s), 299);
	assert_int_equal(have_get(store_have(s), "B"), 149);
	assert_int_equal(add(s, "B", 150, 301, NULL), 1);
	assert_int_equal(store_sync(s), 0);
	store_close(s);
	s = open_ok(f->data);
	assert_int_equal(store_count(s), 300);
	assert_string_equal(store_lookup(s, "B", 150)->text, "B-150");
	store_close(s);
}

static void
assert_msg_equal(const struct nt_msg *a, const struct nt_msg *b)
{
	assert_string_equal(a->origin, b->origin);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->lamport, b->lamport);
	assert_int_equal(a->ts, b->ts);
	assert_string_equal(a->from, b->from);
	assert_string_equal(a->text, b->text);
	if (a->client_id == NULL || b->client_id == NULL)
		assert_ptr_equal(a->client_id, b->client_id);
	else
		assert_string_equal(a->client_id, b->client_id);
}

static void
test_persistence(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	struct nt_msg	**saved, **again;
	char		 before[256];
	off_t		 size;
	size_t		 i, n;

	s = open_ok(f->data);
	assert_int_equal(add(s, "B", 1, 7, "b1"), 1);
	assert_int_equal(add(s, "A", 1, 2, NULL), 1);
	assert_int_equal(add(s, "C", 1, 7, NULL), 1);
	assert_int_equal(add(s, "A", 2, 9, "a2"), 1);
	assert_int_equal(add(s, "B", 2, 3, NULL), 1);
	assert_int_equal(add(s, "A/seed", 1, 4, NULL), 1);
	assert_int_equal(store_sync(s), 0);
	n = store_count(s);
	saved = all_msgs(s);
	snprintf(before, sizeof(before), "%s", ids(s));
	size = store_log_size(s);
	store_close(s);

	s = open_ok(f->data);
	assert_string_equal(ids(s), before);
	assert_int_equal(store_count(s), n);
	again = all_msgs(s);
	for (i = 0; i < n; i++)
		assert_msg_equal(again[i], saved[i]);
	free_msgs(saved);
	free_msgs(again);
	assert_int_equal(store_lamport(s), 9);
	assert_int_equal(store_log_size(s), size);
	assert_int_equal(store_dirty(s), 0);
	assert_int_equal(have_get(store_have(s), "A"), 2);
	assert_int_equal(have_get(store_have(s), "B"), 2);
	assert_int_equal(store_lookup_client_id(s, "A", "a2")->seq, 2);
	assert_int_equal(store_lookup(s, "B", 1)->lamport, 7);

	/* The log goes on where it stopped. */
	assert_int_equal(add(s, "A", 2, 10, NULL), 0);
	assert_int_equal(add(s, "A", 3, 10, NULL), 1);
	store_close(s);
	s = open_ok(f->data);
	assert_int_equal(store_count(s), n + 1);
	assert_string_equal(store_lookup(s, "A", 3)->text, "A-3");
	store_close(s);
}

static int
state_file(const struct fixture *f, const char *name, char *buf, size_t len)
{
	char	 path[PATH_MAX];
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof(path), "%s/%s", f->data, name);
	if ((fd = open(path, O_RDONLY)) == -1)
		return (0);
	n = read(fd, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return (1);
}

static struct store *
open_policy(const char *dir, enum fsync_policy policy)
{
	struct store	*s;
	char		*cause = NULL;

	if ((s = store_open(dir, policy, &cause)) == NULL)
		fail_msg("store_open %s: %s", dir, cause);
	return (s);
}

/* store_doubt(): why a node must hear its peers before numbering a chat. */
static void
test_doubt(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	char		*cause = NULL, buf[64];

	/* A new (empty) log, and the "running" file with the policy. */
	s = open_ok(f->data);
	assert_string_equal(store_doubt(s), "the log is empty");
	assert_true(state_file(f, "running", buf, sizeof(buf)));
	assert_string_equal(buf, "batch\n");
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	assert_int_equal(store_stop(s, &cause), 0);
	assert_false(state_file(f, "running", buf, sizeof(buf)));
	assert_int_equal(store_dirty(s), 0);
	store_close(s);

	/* A clean stop, or a crash under batch: no doubt. */
	s = open_ok(f->data);
	assert_null(store_doubt(s));
	store_close(s);
	s = open_ok(f->data);
	assert_null(store_doubt(s));

	/* The recovering mark survives a crash, and goes when cleared. */
	assert_int_equal(store_set_recovering(s, 1, &cause), 0);
	assert_true(state_file(f, "recovering", buf, sizeof(buf)));
	store_close(s);
	s = open_policy(f->data, FSYNC_NONE);
	assert_string_equal(store_doubt(s),
	    "a recovery was under way when the node stopped");
	assert_int_equal(store_set_recovering(s, 0, &cause), 0);
	assert_false(state_file(f, "recovering", buf, sizeof(buf)));
	assert_true(state_file(f, "running", buf, sizeof(buf)));
	assert_string_equal(buf, "none\n");
	store_close(s);

	/* The last run died under "none": acked messages may be gone. */
	s = open_ok(f->data);
	assert_non_null(strstr(store_doubt(s), "did not stop cleanly"));
	assert_int_equal(store_stop(s, &cause), 0);
	store_close(s);
	s = open_policy(f->data, FSYNC_NONE);
	assert_null(store_doubt(s));
	assert_int_equal(store_stop(s, &cause), 0);
	store_close(s);

	/* A cut tail. */
	file_append(f->log, "junk!", 5);
	s = open_ok(f->data);
	assert_string_equal(store_doubt(s), "the end of the log was lost");
	store_close(s);
}

static void
test_torn_tail(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	char		 out[1024], want[PATH_MAX];
	off_t		 size2, size3;

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	assert_int_equal(add(s, "A", 2, 2, NULL), 1);
	size2 = store_log_size(s);
	assert_int_equal(add(s, "A", 3, 3, NULL), 1);
	size3 = store_log_size(s);
	store_close(s);

	/* Garbage after the last record. */
	file_append(f->log, "junk!", 5);
	s = open_captured(f, out, sizeof(out));
	assert_int_equal(store_count(s), 3);
	assert_int_equal(file_size(f->log), size3);
	assert_int_equal(store_log_size(s), size3);
	snprintf(want, sizeof(want), "%s: corrupt or torn record at offset "
	    "%lld (short header); truncating 5 bytes", f->log,
	    (long long)size3);
	assert_non_null(strstr(out, want));
	store_close(s);

	/* The last record cut short, as by a crash mid-write. */
	assert_int_equal(truncate(f->log, size3 - 3), 0);
	s = open_captured(f, out, sizeof(out));
	assert_string_equal(ids(s), "A-1 A-2");
	assert_int_equal(file_size(f->log), size2);
	assert_int_equal(have_get(store_have(s), "A"), 2);
	assert_non_null(strstr(out, "(short payload)"));
	/* The lost message can be taken again, from a peer. */
	assert_int_equal(add(s, "A", 3, 3, NULL), 1);
	assert_int_equal(store_log_size(s), size3);
	store_close(s);
	s = open_ok(f->data);
	assert_int_equal(store_count(s), 3);
	store_close(s);
}

static void
test_bad_length(void **state)
{
	struct fixture		*f = *state;
	struct store		*s;
	static const unsigned char	 huge[8] = { 0xff, 0xff, 0xff, 0xff };
	static const unsigned char	 zero[12];
	char			 out[1024];
	off_t			 size1;

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	size1 = store_log_size(s);
	store_close(s);

	file_append(f->log, huge, sizeof(huge));
	file_append(f->log, "xxxxxxxx", 8);
	s = open_captured(f, out, sizeof(out));
	assert_int_equal(store_count(s), 1);
	assert_int_equal(file_size(f->log), size1);
	assert_non_null(strstr(out, "(bad length); truncating 16 bytes"));
	store_close(s);

	file_append(f->log, zero, sizeof(zero));
	s = open_captured(f, out, sizeof(out));
	assert_int_equal(store_count(s), 1);
	assert_int_equal(file_size(f->log), size1);
	assert_non_null(strstr(out, "(bad length)"));
	store_close(s);
}

/* Flip one bit of the byte at off. */
static void
flip(const char *path, off_t off)
{
	unsigned char	 c;
	int		 fd;

	assert_true((fd = open(path, O_RDWR)) != -1);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* The file named in a "moved to PATH;" or "(saved in PATH)" log line. */
static char *
side_file(const char *out)
{
	static char	 path[PATH_MAX];
	const char	*p;
	size_t		 n;

	if ((p = strstr(out, "moved to ")) != NULL)
		p += strlen("moved to ");
	else if ((p = strstr(out, "(saved in ")) != NULL)
		p += strlen("(saved in ");
	assert_non_null(p);
	n = strcspn(p, ";)");
	assert_true(n < sizeof(path));
	memcpy(path, p, n);
	path[n] = '\0';
	return (path);
}

/* One flipped bit in the middle: that record moves aside, the rest stay. */
static void
test_bad_crc(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	char		 out[2048], want[PATH_MAX], rec[256], saved[256];
	off_t		 size1, size2, size3;
	int		 fd;

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	size1 = store_log_size(s);
	assert_int_equal(add(s, "B", 1, 2, NULL), 1);
	size2 = store_log_size(s);
	assert_int_equal(add(s, "A", 2, 3, NULL), 1);
	size3 = store_log_size(s);
	assert_int_equal(store_stop(s, &(char *){ NULL }), 0);
	store_close(s);

	/* One bit, in the middle of the second record's payload. */
	flip(f->log, size1 + 8 + (size2 - size1 - 8) / 2);
	assert_true((fd = open(f->log, O_RDONLY)) != -1);
	assert_int_equal(pread(fd, rec, size2 - size1, size1), size2 - size1);
	close(fd);

	s = open_captured(f, out, sizeof(out));
	assert_string_equal(ids(s), "A-1 A-2");
	assert_int_equal(file_size(f->log), size3 - (size2 - size1));
	assert_int_equal(store_log_size(s), size3 - (size2 - size1));
	snprintf(want, sizeof(want), "%s: corrupt record at offset %lld "
	    "(bad crc): %lld damaged bytes moved to %s.damaged-", f->log,
	    (long long)size1, (long long)(size2 - size1), f->log);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "; the records after them are kept"));
	assert_string_equal(store_doubt(s), "the log was damaged");
	/* The damaged bytes, as they were, for an operator to look at. */
	assert_int_equal(file_size(side_file(out)), size2 - size1);
	assert_true((fd = open(side_file(out), O_RDONLY)) != -1);
	assert_int_equal(read(fd, saved, sizeof(saved)), size2 - size1);
	close(fd);
	assert_memory_equal(saved, rec, size2 - size1);
	store_close(s);

	/* The log is clean again. */
	s = open_captured(f, out, sizeof(out));
	assert_string_equal(ids(s), "A-1 A-2");
	assert_null(strstr(out, "corrupt"));
	store_close(s);
}

/*
 * A damaged record of an origin with more after it: those wait beyond
 * the gap, kept in the log, until the missing one comes (from a peer).
 */
static void
test_damage_gap(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	char		 out[2048], want[256];
	off_t		 size1, size2;

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	size1 = store_log_size(s);
	assert_int_equal(add(s, "A", 2, 2, NULL), 1);
	size2 = store_log_size(s);
	assert_int_equal(add(s, "B", 1, 3, NULL), 1);
	assert_int_equal(add(s, "A", 3, 4, NULL), 1);
	assert_int_equal(add(s, "A", 4, 5, "a4"), 1);
	store_close(s);

	/* The length of A-2: the next header is found by the resync. */
	flip(f->log, size1 + 2);
	s = open_captured(f, out, sizeof(out));
	snprintf(want, sizeof(want), "corrupt record at offset %lld (short "
	    "payload): %lld damaged bytes moved", (long long)size1,
	    (long long)(size2 - size1));
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "2 messages of A after a gap at A-2 are "
	    "kept aside until the gap is filled"));
	assert_string_equal(ids(s), "A-1 B-1");
	assert_int_equal(have_get(store_have(s), "A"), 1);
	assert_int_equal(store_parked(s, "A"), 2);
	assert_int_equal(file_size(side_file(out)), size2 - size1);

	/* A-2 from a peer: take their places. */
	assert_int_equal(add(s, "A", 3, 4, NULL), -2);
	assert_int_equal(add(s, "A", 2, 2, NULL), 1);
	assert_int_equal(have_get(store_have(s), "A"), 4);
	assert_int_equal(store_parked(s, "A"), 0);
	assert_string_equal(ids(s), "A-1 A-2 B-1 A-3 A-4");
	assert_int_equal(store_lookup_client_id(s, "A", "a4")->seq, 4);
	assert_int_equal(add(s, "A", 4, 5, NULL), 0);
	store_close(s);

	/* In the log, A-2 now follows A-4: the order is made at open. */
	s = open_captured(f, out, sizeof(out));
	assert_string_equal(ids(s), "A-1 A-2 B-1 A-3 A-4");
	assert_null(strstr(out, "corrupt"));
	assert_null(strstr(out, "kept aside"));
	assert_int_equal(store_parked(s, "A"), 0);
	store_close(s);
}

/* Junk between records (a bad block): skipped, records after it kept. */
static void
test_damage_junk(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	struct nt_msg	*m;
	msgpack_sbuffer	 sb;
	msgpack_packer	 pk;
	char		 out[2048], junk[300];
	off_t		 size1;

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	size1 = store_log_size(s);
	store_close(s);
	/* Junk that looks like headers here and there, then two records. */
	memset(junk, 0x86, sizeof(junk));
	file_append(f->log, junk, sizeof(junk));
	m = mk("A", 2, 2, NULL);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msg_pack(&pk, m);
	file_append_record(f->log, sb.data, sb.size);
	file_append_record(f->log, sb.data, sb.size);	/* a duplicate */
	msgpack_sbuffer_destroy(&sb);
	msg_free(m);

	s = open_captured(f, out, sizeof(out));
	assert_string_equal(ids(s), "A-1 A-2");
	assert_non_null(strstr(out, "(bad length): 300 damaged bytes moved"));
	assert_int_equal(file_size(side_file(out)), sizeof(junk));
	assert_int_equal(file_size(f->log), store_log_size(s));
	assert_int_equal(store_log_size(s), size1 + 2 * (8 + (off_t)sb.size));
	store_close(s);
}

/* A record whose crc is right but whose payload is no message. */
static void
test_bad_payload(void **state)
{
	struct fixture		*f = *state;
	struct store		*s;
	static const unsigned char	 seven = 0x07;	/* msgpack int 7 */
	static const unsigned char	 nomsg[] = {	/* {"seq": 1} */
		0x81, 0xa3, 's', 'e', 'q', 0x01
	};
	char			 out[1024];
	off_t			 size1;

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	size1 = store_log_size(s);
	store_close(s);

	file_append_record(f->log, &seven, 1);
	s = open_captured(f, out, sizeof(out));
	assert_int_equal(store_count(s), 1);
	assert_int_equal(file_size(f->log), size1);
	assert_non_null(strstr(out, "(not a message)"));
	store_close(s);

	file_append_record(f->log, nomsg, sizeof(nomsg));
	s = open_captured(f, out, sizeof(out));
	assert_int_equal(store_count(s), 1);
	assert_int_equal(file_size(f->log), size1);
	store_close(s);
}

/* Duplicates and gaps in a log are skipped, and nothing is truncated. */
static void
test_replay_dup_and_gap(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	char		*buf, out[1024];
	off_t		 size1, size2;
	int		 fd;

	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	size1 = store_log_size(s);
	assert_int_equal(add(s, "A", 2, 2, NULL), 1);
	size2 = store_log_size(s);
	store_close(s);

	/* The log twice over: every record a duplicate the second time. */
	buf = xmalloc(size2);
	assert_true((fd = open(f->log, O_RDONLY)) != -1);
	assert_int_equal(read(fd, buf, size2), size2);
	close(fd);
	file_append(f->log, buf, size2);
	s = open_ok(f->data);
	assert_string_equal(ids(s), "A-1 A-2");
	assert_int_equal(file_size(f->log), 2 * size2);
	store_close(s);

	/* A-2 alone: kept aside beyond the gap; B-1 after it is kept. */
	assert_int_equal(truncate(f->log, 0), 0);
	file_append(f->log, buf + size1, size2 - size1);
	s = open_captured(f, out, sizeof(out));
	assert_int_equal(store_count(s), 0);
	assert_non_null(strstr(out, "1 messages of A after a gap at A-1 are "
	    "kept aside"));
	assert_int_equal(store_parked(s, "A"), 1);
	assert_int_equal(add(s, "B", 1, 5, NULL), 1);
	store_close(s);
	s = open_captured(f, out, sizeof(out));
	assert_string_equal(ids(s), "B-1");
	assert_int_equal(have_get(store_have(s), "A"), 0);
	assert_non_null(strstr(out, "gap"));
	/* A-1 comes: A-2 follows it. */
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	assert_string_equal(ids(s), "A-1 A-2 B-1");
	store_close(s);
	free(buf);
}

static void
test_bad_data_dir(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	char		 path[PATH_MAX], want[PATH_MAX + 64];
	char		*cause = NULL;
	int		 fd;

	snprintf(path, sizeof(path), "%s/file", f->root);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) != -1);
	close(fd);
	s = store_open(path, FSYNC_BATCH, &cause);
	assert_null(s);
	assert_non_null(cause);
	snprintf(want, sizeof(want), "data_dir %s: %s", path,
	    strerror(ENOTDIR));
	assert_string_equal(cause, want);
	free(cause);

	/* Missing parents are made, as mkdir -p would ("./data/A")... */
	snprintf(path, sizeof(path), "%s/no/such", f->root);
	cause = NULL;
	assert_non_null(s = store_open(path, FSYNC_BATCH, &cause));
	store_close(s);
	snprintf(want, sizeof(want), "%s/no/such/messages.log", f->root);
	unlink(want);
	rmdir(path);
	snprintf(want, sizeof(want), "%s/no", f->root);
	rmdir(want);

	/* ...but a parent that is a file is an error naming data_dir. */
	snprintf(path, sizeof(path), "%s/file/sub", f->root);
	cause = NULL;
	assert_null(store_open(path, FSYNC_BATCH, &cause));
	snprintf(want, sizeof(want), "data_dir %s: %s", path,
	    strerror(ENOTDIR));
	assert_string_equal(cause, want);
	free(cause);
}

/* Whether store_open() refuses dir with exactly the cause want. */
static int
open_refused(const char *dir, const char *want)
{
	struct store	*s;
	char		*cause = NULL;
	int		 ok;

	if ((s = store_open(dir, FSYNC_BATCH, &cause)) != NULL) {
		store_close(s);
		return (0);
	}
	ok = cause != NULL && strcmp(cause, want) == 0;
	if (!ok)
		fprintf(stderr, "cause: %s\nwant:  %s\n", cause, want);
	free(cause);
	return (ok);
}

#define NOBODY	65534

/*
 * A data_dir the user may not write.  Permissions bind every user but
 * root, so as root the check runs in a child that became nobody, with a
 * directory that nobody owns and may read but not write.
 */
static void
test_readonly_data_dir(void **state)
{
	struct fixture	*f = *state;
	char		 want[PATH_MAX];
	pid_t		 pid;
	int		 status;

	assert_int_equal(mkdir(f->data, 0500), 0);
	snprintf(want, sizeof(want), "data_dir %s: %s", f->data,
	    strerror(EACCES));
	if (geteuid() != 0) {
		assert_true(open_refused(f->data, want));
		chmod(f->data, 0700);
		return;
	}
	assert_int_equal(chmod(f->root, 0755), 0);
	assert_int_equal(chown(f->data, NOBODY, NOBODY), 0);
	if ((pid = fork()) == 0) {
		if (setgroups(0, NULL) == -1 || setgid(NOBODY) == -1 ||
		    setuid(NOBODY) == -1)
			_exit(2);
		_exit(open_refused(f->data, want) ? 0 : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	chmod(f->data, 0700);
}

static void
test_creates_data_dir(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	struct stat	 st;
	mode_t		 old;

	old = umask(022);
	s = open_ok(f->data);
	umask(old);
	assert_string_equal(store_path(s), f->log);
	assert_int_equal(stat(f->data, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(stat(f->log, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(store_log_size(s), 0);
	store_close(s);
}

static void
test_lock(void **state)
{
	struct fixture	*f = *state;
	struct store	*s1, *s2;
	char		 want[PATH_MAX + 64];
	char		*cause = NULL;

	s1 = open_ok(f->data);
	s2 = store_open(f->data, FSYNC_BATCH, &cause);
	assert_null(s2);
	snprintf(want, sizeof(want), "%s is in use by another nodetalkd",
	    f->log);
	assert_string_equal(cause, want);
	free(cause);
	store_close(s1);

	s2 = open_ok(f->data);
	store_close(s2);
}

/*
 * A write that fails half way (here: RLIMIT_FSIZE) leaves neither half a
 * record on disk nor the message in memory.
 */
static void
test_write_error(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	struct nt_msg	*m;
	struct rlimit	 rl, low;
	off_t		 size1;
	int		 rv, err;

	signal(SIGXFSZ, SIG_IGN);
	s = open_ok(f->data);
	assert_int_equal(add(s, "A", 1, 1, NULL), 1);
	size1 = store_log_size(s);

	m = mk("A", 2, 2, NULL);
	free(m->text);
	m->text = xmalloc(501);
	memset(m->text, 'x', 500);
	m->text[500] = '\0';
	/*
	 * The turn's write fails (the file may not grow): nothing of it
	 * stays in the file, so that no half record waits for the replay.
	 * The caller stops (the message was taken in memory).
	 */
	assert_int_equal(store_append(s, m), 1);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
	low = rl;
	low.rlim_cur = size1 + 20;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
	rv = store_write(s);
	err = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
	assert_int_equal(rv, -1);
	assert_int_equal(err, EFBIG);
	assert_int_equal(file_size(f->log), size1);
	msg_free(m);
	store_close(s);
	s = open_ok(f->data);
	assert_int_equal(store_count(s), 1);
	store_close(s);
}

/* A record replay would refuse is never written. */
static void
test_oversize(void **state)
{
	struct fixture	*f = *state;
	struct store	*s;
	struct nt_msg	*m;
	size_t		 len = 16 * 1024 * 1024 + 1;

	s = open_ok(f->data);
	m = mk("A", 1, 1, NULL);
	free(m->text);
	m->text = xmalloc(len + 1);
	memset(m->text, 'x', len);
	m->text[len] = '\0';
	errno = 0;
	assert_int_equal(store_append(s, m), -1);
	assert_int_equal(errno, EMSGSIZE);
	msg_free(m);
	assert_int_equal(store_count(s), 0);
	assert_int_equal(file_size(f->log), 0);
	assert_int_equal(store_dirty(s), 0);
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_order_random, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_and_gap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_have, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_client_id, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cursor, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_newest_and_pages, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_index_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_doubt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_length, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_crc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_gap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_damage_junk, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_payload, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_replay_dup_and_gap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_data_dir, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_readonly_data_dir, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_creates_data_dir, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oversize, setup,
		    teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
