/*
 * test_config.c: config.c against the shipped examples, every kind of
 * error (each must name its file and line), the overrides (-n, $NT_PORT)
 * and the config_print() round trip.
 *
 * Small configs are written to a private temporary directory from the
 * strings below, so that the line each error must name is in sight.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* asprintf */
#endif
#include <sys/stat.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "nodetalk.h"
#include "log.h"
#include "config.h"

static char	 tmpdir[] = "/tmp/test_config.XXXXXX";

static const char *tmpfiles[] = {
	"t.conf", "printed.conf", "uncommented.conf"
};

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return (-1);
	return (0);
}

static int
teardown(void **state)
{
	char	*p;
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(tmpfiles) / sizeof(tmpfiles[0]); i++) {
		if (asprintf(&p, "%s/%s", tmpdir, tmpfiles[i]) == -1)
			return (-1);
		unlink(p);
		free(p);
	}
	return (rmdir(tmpdir));
}

static char *
srcpath(const char *rel)
{
	const char	*dir;
	char		*p;

	if ((dir = getenv("NT_SRCDIR")) == NULL || *dir == '\0')
		dir = ".";
	assert_int_not_equal(asprintf(&p, "%s/%s", dir, rel), -1);
	return (p);
}

/* name in the temporary directory; one of tmpfiles[]. */
static char *
tmppath(const char *name)
{
	char	*p;

	assert_int_not_equal(asprintf(&p, "%s/%s", tmpdir, name), -1);
	return (p);
}

static void
write_file(const char *path, const char *text)
{
	FILE	*fp;

	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static char *
read_file(const char *path)
{
	FILE	*fp;
	char	*buf;
	long	 len;

	assert_non_null(fp = fopen(path, "r"));
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	assert_true((len = ftell(fp)) >= 0);
	rewind(fp);
	assert_non_null(buf = malloc(len + 1));
	assert_int_equal(fread(buf, 1, len, fp), (size_t)len);
	buf[len] = '\0';
	fclose(fp);
	return (buf);
}

/* Load text as t.conf; *path (caller frees) is where it was written. */
static struct nt_config *
load_text(const char *text, const char *node_id, const char *port_env,
    char **errors, char **path)
{
	*path = tmppath("t.conf");
	write_file(*path, text);
	return (config_load(*path, node_id, port_env, errors));
}

/* want with every "@" replaced by path. */
static char *
expand(const char *want, const char *path)
{
	char	*out, *p;

	p = out = malloc(strlen(want) * (strlen(path) + 1) + 1);
	assert_non_null(out);
	for (; *want != '\0'; want++) {
		if (*want == '@') {
			strcpy(p, path);
			p += strlen(path);
		} else
			*p++ = *want;
	}
	*p = '\0';
	return (out);
}

/* Loading text fails with exactly want ("@" standing for the file). */
static void
assert_errors(const char *text, const char *node_id, const char *port_env,
    const char *want)
{
	struct nt_config	*c;
	char			*errors = NULL, *path, *exp;

	c = load_text(text, node_id, port_env, &errors, &path);
	exp = expand(want, path);
	assert_null(c);
	assert_non_null(errors);
	assert_string_equal(errors, exp);
	free(exp);
	free(errors);
	free(path);
}

static struct nt_config *
load_ok(const char *path, const char *node_id, const char *port_env)
{
	struct nt_config	*c;
	char			*errors = NULL;

	c = config_load(path, node_id, port_env, &errors);
	if (c == NULL)
		fail_msg("%s", errors);
	assert_null(errors);
	return (c);
}

static struct nt_config *
load_text_ok(const char *text, const char *node_id, const char *port_env)
{
	struct nt_config	*c;
	char			*path;

	path = tmppath("t.conf");
	write_file(path, text);
	c = load_ok(path, node_id, port_env);
	free(path);
	return (c);
}

static void
assert_node(const struct nt_node *n, const char *id, const char *host,
    int port, const char *listen, const char *data_dir, int seed)
{
	assert_string_equal(n->id, id);
	assert_string_equal(n->host, host);
	assert_int_equal(n->port, port);
	assert_string_equal(n->listen, listen);
	assert_string_equal(n->data_dir, data_dir);
	assert_int_equal(n->seed, seed);
}

static void
assert_defaults(const struct nt_config *c)
{
	assert_int_equal(c->log_level, LOG_LVL_INFO);
	assert_int_equal(c->fsync, FSYNC_BATCH);
	assert_int_equal(c->fsync_interval_ms, 10);
	assert_int_equal(c->max_clients, 1024);
	assert_int_equal(c->max_message_bytes, 4096);
	assert_int_equal(c->max_frame_bytes, 65536);
	assert_int_equal(c->max_clients_per_address, 64);
	assert_int_equal(c->max_client_backlog_bytes, 1048576);
	assert_int_equal(c->max_peer_backlog_bytes, 16777216);
	assert_int_equal(c->http_timeout_ms, 10000);
	assert_int_equal(c->join_timeout_ms, 15000);
	assert_int_equal(c->ping_interval_ms, 30000);
	assert_int_equal(c->peer_ping_interval_ms, 2000);
	assert_int_equal(c->ping_timeout_ms, 4000);
	assert_int_equal(c->worker_backlog_bytes, 64 * 1024 * 1024);
	assert_int_equal(c->join_history, 1000);
}

static void
assert_config_equal(const struct nt_config *a, const struct nt_config *b)
{
	assert_string_equal(a->node_id, b->node_id);
	assert_string_equal(a->self->id, b->self->id);
	assert_int_equal(config_nodes_equal(a, b), 1);
	assert_int_equal(a->log_level, b->log_level);
	assert_int_equal(a->fsync, b->fsync);
	assert_int_equal(a->fsync_interval_ms, b->fsync_interval_ms);
	assert_int_equal(a->max_clients, b->max_clients);
	assert_int_equal(a->max_message_bytes, b->max_message_bytes);
	assert_int_equal(a->max_frame_bytes, b->max_frame_bytes);
	assert_int_equal(a->max_clients_per_address,
	    b->max_clients_per_address);
	assert_int_equal(a->max_client_backlog_bytes,
	    b->max_client_backlog_bytes);
	assert_int_equal(a->max_peer_backlog_bytes, b->max_peer_backlog_bytes);
	assert_int_equal(a->http_timeout_ms, b->http_timeout_ms);
	assert_int_equal(a->join_timeout_ms, b->join_timeout_ms);
	assert_int_equal(a->ping_interval_ms, b->ping_interval_ms);
	assert_int_equal(a->peer_ping_interval_ms, b->peer_ping_interval_ms);
	assert_int_equal(a->ping_timeout_ms, b->ping_timeout_ms);
	assert_int_equal(a->worker_backlog_bytes, b->worker_backlog_bytes);
	assert_int_equal(a->join_history, b->join_history);
	assert_int_equal(a->engine, b->engine);
	if (a->engine == ENGINE_NATS) {
		assert_int_equal(config_nats_equal(&a->nats, &b->nats), 1);
		assert_string_equal(a->nats.subject, b->nats.subject);
	}
}

#define NODES_AB \
	"nodes = (\n" \
	"  { id = \"A\"; host = \"ha\"; },\n" \
	"  { id = \"B\"; host = \"hb\"; }\n" \
	");\n"

static void
test_shipped_example(void **state)
{
	struct nt_config	*c;
	char			*path;

	(void)state;
	path = srcpath("etc/nodetalk.conf");
	c = load_ok(path, NULL, NULL);
	assert_string_equal(c->path, path);
	assert_string_equal(c->node_id, "A");
	assert_int_equal(c->nnodes, 3);
	/* Installed to /etc: three nodes on this machine, loopback only. */
	assert_node(&c->nodes[0], "A", "127.0.0.1", 9000,
	    "127.0.0.1", "/var/lib/nodetalk/A", 0);
	assert_node(&c->nodes[1], "B", "127.0.0.2", 9000,
	    "127.0.0.2", "/var/lib/nodetalk/B", 0);
	assert_node(&c->nodes[2], "C", "127.0.0.3", 9000,
	    "127.0.0.3", "/var/lib/nodetalk/C", 0);
	assert_ptr_equal(c->self, &c->nodes[0]);
	assert_int_equal(config_has_seed(c), 0);
	assert_defaults(c);
	config_free(c);
	free(path);

	/* The original deployment, kept as an example. */
	path = srcpath("doc/examples/nodetalk-course.conf");
	c = load_ok(path, NULL, NULL);
	assert_node(&c->nodes[0], "A", "svm-11.cs.helsinki.fi", 9000,
	    "0.0.0.0", "/var/lib/nodetalk", 0);
	assert_node(&c->nodes[2], "C", "svm-11-3.cs.helsinki.fi", 9000,
	    "0.0.0.0", "/var/lib/nodetalk", 0);
	config_free(c);
	free(path);
}

static void
test_shipped_local(void **state)
{
	static const char	*ids[] = { "A", "B", "C" };
	struct nt_config	*c;
	char			*path, host[16], dir[16];
	size_t			 i;

	(void)state;
	path = srcpath("etc/nodetalk-local.conf");
	for (i = 0; i < 3; i++) {
		c = load_ok(path, ids[i], NULL);
		assert_int_equal(c->nnodes, 3);
		snprintf(host, sizeof(host), "127.0.0.%zu", i + 1);
		snprintf(dir, sizeof(dir), "./data/%s", ids[i]);
		assert_string_equal(c->node_id, ids[i]);
		assert_node(c->self, ids[i], host, 9000, host, dir, 0);
		assert_defaults(c);
		config_free(c);
	}
	free(path);
}

/*
 * etc/nodetalk.conf shows each optional key as "#key = default;".  With
 * those lines uncommented it must load to the same config: the documented
 * defaults are the real ones.  And every key config_print() knows must be
 * documented there.
 */
static void
test_shipped_example_documents_keys(void **state)
{
	struct nt_config	*a, *b;
	char			*path, *text, *p, *upath, *out, *line, *eq;
	char			 key[64], *tail;
	size_t			 len;
	FILE			*fp;

	(void)state;
	path = srcpath("etc/nodetalk.conf");
	text = read_file(path);
	for (p = text; (p = strstr(p, "\n#")) != NULL; p++)
		if (p[2] >= 'a' && p[2] <= 'z')
			p[1] = ' ';
	upath = tmppath("uncommented.conf");
	write_file(upath, text);
	a = load_ok(path, NULL, NULL);
	b = load_ok(upath, NULL, NULL);
	assert_config_equal(a, b);
	free(text);

	text = read_file(path);
	assert_non_null(fp = open_memstream(&out, &len));
	config_print(fp, a);
	fclose(fp);
	for (line = strtok_r(out, "\n", &tail); line != NULL;
	    line = strtok_r(NULL, "\n", &tail)) {
		if (line[0] == '#' || line[0] == ' ' ||
		    (eq = strstr(line, " = ")) == NULL)
			continue;
		snprintf(key, sizeof(key), "\n%.*s = ", (int)(eq - line), line);
		if (strstr(text, key) != NULL)
			continue;
		snprintf(key, sizeof(key), "\n#%.*s = ", (int)(eq - line),
		    line);
		if (strstr(text, key) == NULL)
			fail_msg("key %s not in %s", line, path);
	}
	free(out);
	free(text);
	config_free(a);
	config_free(b);
	free(upath);
	free(path);
}

static void
test_defaults(void **state)
{
	struct nt_config	*c;

	(void)state;
	c = load_text_ok(NODES_AB, "B", NULL);
	assert_defaults(c);
	assert_string_equal(c->node_id, "B");
	assert_ptr_equal(c->self, &c->nodes[1]);
	/* The default data_dir follows ./configure --localstatedir. */
	assert_node(&c->nodes[0], "A", "ha", 9000, "0.0.0.0",
	    LOCALSTATEDIR "/lib/nodetalk", 0);
	config_free(c);
}

static void
test_values_and_overrides(void **state)
{
	struct nt_config	*c;

	(void)state;
	c = load_text_ok(
	    "node_id = \"B\";\n"
	    "port = 9100;\n"
	    "listen = \"10.0.0.1\";\n"
	    "data_dir = \"/srv/nt\";\n"
	    "log_level = \"DEBUG\";\n"
	    "fsync = \"always\";\n"
	    "fsync_interval_ms = 10000;\n"
	    "max_clients = 100000;\n"
	    "max_message_bytes = 1;\n"
	    "max_frame_bytes = 1025;\n"
	    "worker_backlog_bytes = 2097152;\n"
	    "join_history = 0;\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; port = 9200; seed = true; },\n"
	    "  { id = \"B\"; host = \"hb\"; listen = \"127.0.0.2\"; },\n"
	    "  { id = \"c_9-Z\"; host = \"hc\"; data_dir = \"./c\"; "
	    "seed = false; }\n"
	    ");\n", NULL, NULL);
	assert_int_equal(c->log_level, LOG_LVL_DEBUG);
	assert_int_equal(c->fsync, FSYNC_ALWAYS);
	assert_int_equal(c->fsync_interval_ms, 10000);
	assert_int_equal(c->max_clients, 100000);
	assert_int_equal(c->max_message_bytes, 1);
	assert_int_equal(c->max_frame_bytes, 1025);
	assert_int_equal(c->worker_backlog_bytes, 2097152);
	assert_int_equal(c->join_history, 0);
	assert_node(&c->nodes[0], "A", "ha", 9200, "10.0.0.1", "/srv/nt", 1);
	assert_node(&c->nodes[1], "B", "hb", 9100, "127.0.0.2", "/srv/nt", 0);
	assert_node(&c->nodes[2], "c_9-Z", "hc", 9100, "10.0.0.1", "./c", 0);
	assert_ptr_equal(c->self, &c->nodes[1]);
	assert_int_equal(config_has_seed(c), 1);
	assert_ptr_equal(config_node(c, "c_9-Z"), &c->nodes[2]);
	assert_null(config_node(c, "D"));
	assert_null(config_node(c, "a"));
	config_free(c);
}

static void
test_node_id_option(void **state)
{
	struct nt_config	*c;

	(void)state;
	c = load_text_ok("node_id = \"A\";\n" NODES_AB, "B", NULL);
	assert_string_equal(c->node_id, "B");
	assert_string_equal(c->self->id, "B");
	config_free(c);
	c = load_text_ok("node_id = \"A\";\n" NODES_AB, NULL, NULL);
	assert_string_equal(c->self->id, "A");
	config_free(c);
}

static void
test_nt_port(void **state)
{
	static const char	*bad[] = {
		"", "abc", "0", "65536", "9000x", " 9000", "-1", "+9000",
		"99999999999999999999"
	};
	struct nt_config	*c;
	char			 want[128];
	size_t			 i;

	(void)state;
	c = load_text_ok("node_id = \"A\";\nport = 9100;\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; },\n"
	    "  { id = \"B\"; host = \"hb\"; port = 9300; }\n"
	    ");\n", NULL, "9200");
	assert_int_equal(c->nodes[0].port, 9200);
	assert_int_equal(c->nodes[1].port, 9200);
	config_free(c);
	c = load_text_ok("node_id = \"A\";\n" NODES_AB, NULL, "65535");
	assert_int_equal(c->self->port, 65535);
	config_free(c);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want), "NT_PORT: must be a port between "
		    "1 and 65535, not \"%s\"", bad[i]);
		assert_errors("node_id = \"A\";\n" NODES_AB, NULL, bad[i],
		    want);
	}
}

static void
test_unknown_key(void **state)
{
	(void)state;
	assert_errors(
	    "node_id = \"A\";\n"
	    "prot = 9000;\n"
	    NODES_AB,
	    NULL, NULL, "@:2: unknown key 'prot'");
	assert_errors(
	    "node_id = \"A\";\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; },\n"
	    "  { id = \"B\";\n"
	    "    hots = \"hb\"; }\n"
	    ");\n",
	    NULL, NULL,
	    "@:5: unknown key 'hots'\n"
	    "@:4: missing required key 'host'");
	/* A group is no better than a scalar. */
	assert_errors(
	    "node_id = \"A\";\n"
	    NODES_AB
	    "limits = { max = 1; };\n",
	    NULL, NULL, "@:6: unknown key 'limits'");
}

static void
test_bad_type(void **state)
{
	(void)state;
	assert_errors(
	    "node_id = \"A\";\n"
	    "port = \"9000\";\n"
	    "listen = 0;\n"
	    "max_clients = 10.5;\n"
	    "log_level = 3;\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; seed = 1; },\n"
	    "  { id = \"B\"; host = [\"hb\"]; port = true; }\n"
	    ");\n",
	    NULL, NULL,
	    "@:2: 'port' must be an integer\n"
	    "@:3: 'listen' must be a string\n"
	    "@:4: 'max_clients' must be an integer\n"
	    "@:5: 'log_level' must be a string\n"
	    "@:7: 'seed' must be true or false\n"
	    "@:8: 'host' must be a string\n"
	    "@:8: 'port' must be an integer");
	assert_errors("node_id = \"A\";\nnodes = 3;\n", NULL, NULL,
	    "@:2: 'nodes' must be a list: ( { id = ...; host = ...; }, ... )");
	assert_errors("node_id = \"A\";\nnodes = { id = \"A\"; };\n", NULL,
	    NULL,
	    "@:2: 'nodes' must be a list: ( { id = ...; host = ...; }, ... )");
	assert_errors("node_id = \"A\";\nnodes = ( \"A\" );\n", NULL, NULL,
	    "@:2: each entry of 'nodes' must be a group: "
	    "{ id = ...; host = ...; }");
}

static void
test_out_of_range(void **state)
{
	(void)state;
	assert_errors(
	    "node_id = \"A\";\n"
	    "port = 0;\n"
	    "fsync_interval_ms = 10001;\n"
	    "max_clients = 0;\n"
	    "max_message_bytes = 65537;\n"
	    "max_frame_bytes = 1023;\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; port = 65536; },\n"
	    "  { id = \"B\"; host = \"hb\"; port = -1; }\n"
	    ");\n",
	    NULL, NULL,
	    "@:2: 'port' must be between 1 and 65535, not 0\n"
	    "@:3: 'fsync_interval_ms' must be between 1 and 10000, not 10001\n"
	    "@:4: 'max_clients' must be between 1 and 100000, not 0\n"
	    "@:5: 'max_message_bytes' must be between 1 and 65536, not 65537\n"
	    "@:6: 'max_frame_bytes' must be between 1024 and 16777216, "
	    "not 1023\n"
	    "@:8: 'port' must be between 1 and 65535, not 65536\n"
	    "@:9: 'port' must be between 1 and 65535, not -1");
	/* An L suffix makes a 64-bit integer, range-checked all the same. */
	assert_errors("node_id = \"A\";\nmax_frame_bytes = 99999999999L;\n"
	    NODES_AB, NULL, NULL,
	    "@:2: 'max_frame_bytes' must be between 1024 and 16777216, "
	    "not 99999999999");
}

static void
test_bad_strings(void **state)
{
	(void)state;
	assert_errors(
	    "node_id = \"A\";\n"
	    "log_level = \"loud\";\n"
	    "fsync = \"Always\";\n"
	    "listen = \"\";\n"
	    "data_dir = \"\";\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"\"; },\n"
	    "  { id = \"a b\"; host = \"hb\"; },\n"
	    "  { id = \"0123456789012345678901234567890123\"; host = \"h\"; }\n"
	    ");\n",
	    NULL, NULL,
	    "@:2: 'log_level' must be one of \"error\", \"warn\", \"info\", "
	    "\"debug\", not \"loud\"\n"
	    "@:3: 'fsync' must be one of \"always\", \"batch\", \"none\", "
	    "not \"Always\"\n"
	    "@:4: 'listen' must be non-empty, not \"\"\n"
	    "@:5: 'data_dir' must be non-empty, not \"\"\n"
	    "@:7: 'host' must be non-empty, not \"\"\n"
	    "@:8: 'id' must be 1 to 32 characters of A-Z a-z 0-9 _ -, "
	    "not \"a b\"\n"
	    "@:9: 'id' must be 1 to 32 characters of A-Z a-z 0-9 _ -, "
	    "not \"0123456789012345678901234567890123\"");
	/* A bad value cannot break the one-error-per-line promise. */
	assert_errors("node_id = \"A\\nB\";\n" NODES_AB, NULL, NULL,
	    "@:1: 'node_id' must be 1 to 32 characters of A-Z a-z 0-9 _ -, "
	    "not \"A\\x0aB\"");
}

static void
test_frame_vs_message(void **state)
{
	(void)state;
	assert_errors("node_id = \"A\";\nmax_message_bytes = 65536;\n"
	    NODES_AB, NULL, NULL,
	    "@:2: 'max_frame_bytes' (65536) must be at least "
	    "'max_message_bytes' + 1024 (66560)");
	assert_errors("node_id = \"A\";\nmax_frame_bytes = 5119;\n"
	    NODES_AB, NULL, NULL,
	    "@:2: 'max_frame_bytes' (5119) must be at least "
	    "'max_message_bytes' + 1024 (5120)");
	config_free(load_text_ok("node_id = \"A\";\nmax_frame_bytes = 5120;\n"
	    NODES_AB, NULL, NULL));
}

static void
test_duplicate_id(void **state)
{
	(void)state;
	assert_errors(
	    "node_id = \"A\";\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; },\n"
	    "  { id = \"B\"; host = \"hb\"; },\n"
	    "  { host = \"hc\";\n"
	    "    id = \"A\"; }\n"
	    ");\n",
	    NULL, NULL, "@:6: duplicate node id \"A\" (first at line 3)");
	/* libconfig itself refuses a key given twice in one group. */
	assert_errors("node_id = \"A\";\nport = 1;\nport = 2;\n" NODES_AB,
	    NULL, NULL, "@:3: duplicate setting name");
}

static void
test_missing(void **state)
{
	(void)state;
	assert_errors("node_id = \"A\";\nport = 9000;\n", NULL, NULL,
	    "@:1: missing required key 'nodes'");
	assert_errors("node_id = \"A\";\nnodes = ();\n", NULL, NULL,
	    "@:2: 'nodes' must have at least one entry");
	assert_errors(NODES_AB, NULL, NULL,
	    "@:1: no node id: set 'node_id' or use -n");
	assert_errors("", NULL, NULL,
	    "@:1: missing required key 'nodes'\n"
	    "@:1: no node id: set 'node_id' or use -n");
	assert_errors(
	    "node_id = \"A\";\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; },\n"
	    "  {\n"
	    "    host = \"hb\";\n"
	    "  }\n"
	    ");\n",
	    NULL, NULL, "@:4: missing required key 'id'");
}

static void
test_unknown_node(void **state)
{
	(void)state;
	assert_errors("node_id = \"A\";\n" NODES_AB, "D", NULL,
	    "@:2: node \"D\" (from -n) is not in 'nodes' (known: A, B)");
	assert_errors("\n\nnode_id = \"C\";\n" NODES_AB, NULL, NULL,
	    "@:3: node \"C\" is not in 'nodes' (known: A, B)");
	/* -n is checked even though the file's node_id is fine. */
	assert_errors("node_id = \"A\";\n" NODES_AB, "a", NULL,
	    "@:2: node \"a\" (from -n) is not in 'nodes' (known: A, B)");
}

static void
test_syntax_error(void **state)
{
	(void)state;
	assert_errors(
	    "node_id = \"A\";\n"
	    NODES_AB
	    "\n"
	    "port = 9000\n"
	    "listen = 0.0.0.0;\n",
	    NULL, NULL, "@:8: syntax error");
	assert_errors("node_id = \"A\";\nport 9000;\n" NODES_AB, NULL, NULL,
	    "@:2: syntax error");
}

static void
test_cannot_open(void **state)
{
	char	*errors = NULL, *path, *want;

	(void)state;
	path = tmppath("no-such.conf");
	assert_null(config_load(path, NULL, NULL, &errors));
	assert_int_not_equal(asprintf(&want, "%s: cannot open: %s", path,
	    strerror(ENOENT)), -1);
	assert_string_equal(errors, want);
	free(want);
	free(errors);
	free(path);

	assert_null(config_load(tmpdir, NULL, NULL, &errors));
	assert_int_not_equal(asprintf(&want, "%s: cannot open: %s", tmpdir,
	    strerror(EISDIR)), -1);
	assert_string_equal(errors, want);
	free(want);
	free(errors);
}

/*
 * Every problem in one go: top-level keys in file order, then the node
 * entries, then what involves several keys and $NT_PORT.
 */
static void
test_all_errors_reported(void **state)
{
	(void)state;
	assert_errors(
	    "node_id = \"A\";\n"
	    "port = 0;\n"
	    "colour = \"blue\";\n"
	    "fsync = true;\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; seed = \"yes\"; },\n"
	    "  { id = \"B\"; host = \"hb\"; weight = 2; },\n"
	    "  { id = \"A\"; host = \"hc\"; }\n"
	    ");\n"
	    "max_clients = 200000;\n",
	    NULL, "http",
	    "@:2: 'port' must be between 1 and 65535, not 0\n"
	    "@:3: unknown key 'colour'\n"
	    "@:4: 'fsync' must be a string\n"
	    "@:10: 'max_clients' must be between 1 and 100000, not 200000\n"
	    "@:6: 'seed' must be true or false\n"
	    "@:7: unknown key 'weight'\n"
	    "@:8: duplicate node id \"A\" (first at line 6)\n"
	    "NT_PORT: must be a port between 1 and 65535, not \"http\"");
}

/* config_print() output loads back to an equal config. */
static void
assert_round_trip(const struct nt_config *a)
{
	struct nt_config	*b;
	char			*path;
	FILE			*fp;

	path = tmppath("printed.conf");
	assert_non_null(fp = fopen(path, "w"));
	config_print(fp, a);
	assert_int_equal(fclose(fp), 0);
	/* Neither -n nor $NT_PORT: the printed file holds their effect. */
	b = load_ok(path, NULL, NULL);
	assert_config_equal(a, b);
	config_free(b);
	free(path);
}

static void
test_print_round_trip(void **state)
{
	struct nt_config	*c;
	char			*path;

	(void)state;
	c = load_text_ok(
	    "node_id = \"A\";\n"
	    "port = 9100;\n"
	    "data_dir = \"/srv/odd \\\"dir\\\"\\\\ \\t\\x01 \xc3\xa9\";\n"
	    "log_level = \"warn\";\n"
	    "fsync = \"none\";\n"
	    "fsync_interval_ms = 7;\n"
	    "max_clients = 3;\n"
	    "max_message_bytes = 100;\n"
	    "max_frame_bytes = 2000;\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; port = 9200; seed = true; },\n"
	    "  { id = \"B\"; host = \"hb\"; listen = \"127.0.0.2\"; },\n"
	    "  { id = \"C\"; host = \"hc\"; data_dir = \"./c\"; }\n"
	    ");\n", "B", "9400");
	assert_string_equal(c->nodes[0].data_dir,
	    "/srv/odd \"dir\"\\ \t\x01 \xc3\xa9");
	assert_round_trip(c);
	config_free(c);

	path = srcpath("etc/nodetalk.conf");
	c = load_ok(path, "C", NULL);
	assert_round_trip(c);
	config_free(c);
	free(path);
	path = srcpath("etc/nodetalk-local.conf");
	c = load_ok(path, "B", NULL);
	assert_round_trip(c);
	config_free(c);
	free(path);
}

/* What "nodetalkd -t -v" shows for the shipped example, to the byte. */
static void
test_print_golden(void **state)
{
	struct nt_config	*c;
	char			*path, *okpath, *want, *out;
	size_t			 len;
	FILE			*fp;

	(void)state;
	path = srcpath("etc/nodetalk.conf");
	okpath = srcpath("tests/data/conf/nodetalk.conf.ok");
	c = load_ok(path, NULL, NULL);
	assert_non_null(fp = open_memstream(&out, &len));
	config_print(fp, c);
	fclose(fp);
	want = read_file(okpath);
	assert_string_equal(out, want);
	free(want);
	free(out);
	config_free(c);
	free(okpath);
	free(path);
}

static void
test_nodes_equal(void **state)
{
	struct nt_config	*a, *b;

	(void)state;
	a = load_text_ok("node_id = \"A\";\n" NODES_AB, NULL, NULL);
	b = load_text_ok("node_id = \"B\";\nlog_level = \"debug\";\n"
	    NODES_AB, NULL, NULL);
	/* Only the nodes count, not the rest. */
	assert_int_equal(config_nodes_equal(a, b), 1);
	config_free(b);

	b = load_text_ok("node_id = \"A\";\nnodes = (\n"
	    "  { id = \"B\"; host = \"hb\"; },\n"
	    "  { id = \"A\"; host = \"ha\"; }\n);\n", NULL, NULL);
	assert_int_equal(config_nodes_equal(a, b), 0);
	config_free(b);

	b = load_text_ok("node_id = \"A\";\nnodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; },\n"
	    "  { id = \"B\"; host = \"hb\"; seed = true; }\n);\n",
	    NULL, NULL);
	assert_int_equal(config_nodes_equal(a, b), 0);
	config_free(b);

	b = load_text_ok("node_id = \"A\";\n" NODES_AB, NULL, "9001");
	assert_int_equal(config_nodes_equal(a, b), 0);
	config_free(b);

	b = load_text_ok("node_id = \"A\";\nnodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; }\n);\n", NULL, NULL);
	assert_int_equal(config_nodes_equal(a, b), 0);
	assert_int_equal(config_nodes_equal(b, a), 0);
	config_free(b);
	config_free(a);
}

#define NATS_AB \
	"node_id = \"A\";\n" \
	"engine = \"nats\";\n" \
	"nats = { servers = [ \"nats://n1:4222\" ]; };\n" \
	NODES_AB

static void
test_engine_default(void **state)
{
	struct nt_config	*c;

	(void)state;
	c = load_text_ok(NODES_AB, "A", NULL);
	assert_int_equal(c->engine, ENGINE_MESH);
	assert_string_equal(config_engine_name(c->engine), "mesh");
	assert_string_equal(config_engine_name(ENGINE_NATS), "nats");
	config_free(c);
	/* Without engine = "nats" a nats group is checked, not required. */
	c = load_text_ok("nats = { servers = [ \"nats://n\" ]; "
	    "replicas = 1; };\n" NODES_AB, "A", NULL);
	assert_int_equal(c->engine, ENGINE_MESH);
	assert_int_equal(c->nats.replicas, 1);
	config_free(c);
	assert_errors("engine = \"raft\";\n" NODES_AB, "A", NULL,
	    "@:1: 'engine' must be \"mesh\" or \"nats\", not \"raft\"");
}

#ifdef HAVE_NATS
static void
test_engine_nats(void **state)
{
	struct nt_config	*c;

	(void)state;
	c = load_text_ok(NATS_AB, NULL, NULL);
	assert_int_equal(c->engine, ENGINE_NATS);
	assert_int_equal(c->nats.nservers, 1);
	assert_string_equal(c->nats.servers[0], "nats://n1:4222");
	assert_string_equal(c->nats.stream, "nodetalk");
	assert_string_equal(c->nats.subject, "nodetalk.nodetalk");
	assert_int_equal(c->nats.replicas, 3);
	assert_int_equal(c->nats.duplicate_window_ms, 120000);
	assert_int_equal(c->nats.timeout_ms, 5000);
	assert_int_equal(c->nats.connect_timeout_ms, 2000);
	assert_string_equal(c->nats.token, "");
	assert_string_equal(c->nats.creds, "");
	assert_round_trip(c);
	config_free(c);

	c = load_text_ok(
	    "node_id = \"B\";\n"
	    "engine = \"nats\";\n"
	    "nats = {\n"
	    "  servers = ( \"nats://n1:4222\", \"tls://n2\",\n"
	    "    \"nats://u:p@[::1]:4223\" );\n"
	    "  stream = \"chat_1\";\n"
	    "  replicas = 5;\n"
	    "  duplicate_window_ms = 1000;\n"
	    "  timeout_ms = 100;\n"
	    "  connect_timeout_ms = 60000;\n"
	    "  user = \"gw\"; password = \"p\\\"w\";\n"
	    "  tls_ca = \"/ca\"; tls_cert = \"/c\"; tls_key = \"/k\";\n"
	    "};\n" NODES_AB, NULL, NULL);
	assert_int_equal(c->nats.nservers, 3);
	assert_string_equal(c->nats.servers[2], "nats://u:p@[::1]:4223");
	assert_string_equal(c->nats.subject, "nodetalk.chat_1");
	assert_int_equal(c->nats.replicas, 5);
	assert_int_equal(c->nats.duplicate_window_ms, 1000);
	assert_int_equal(c->nats.timeout_ms, 100);
	assert_int_equal(c->nats.connect_timeout_ms, 60000);
	assert_string_equal(c->nats.password, "p\"w");
	assert_string_equal(c->nats.tls_key, "/k");
	assert_round_trip(c);
	config_free(c);
}

static void
test_shipped_nats(void **state)
{
	struct nt_config	*c;
	char			*path;

	(void)state;
	path = srcpath("etc/nodetalk-nats.conf");
	c = load_ok(path, "C", NULL);
	assert_int_equal(c->engine, ENGINE_NATS);
	assert_int_equal(c->nats.nservers, 3);
	assert_string_equal(c->nats.servers[1],
	    "nats://nats-2.example.org:4222");
	assert_int_equal(c->nats.replicas, 3);
	assert_node(c->self, "C", "gw-3.example.org", 9000, "0.0.0.0",
	    "/var/lib/nodetalk", 0);
	assert_round_trip(c);
	config_free(c);
	free(path);
}

/* In nats mode the nodes are gateways: none of them is a seed peer. */
static void
test_nats_errors(void **state)
{
	(void)state;
	assert_errors(
	    "node_id = \"A\";\n"
	    "engine = \"nats\";\n"
	    "nats = { servers = [ \"nats://n\" ]; };\n"
	    "nodes = (\n"
	    "  { id = \"A\"; host = \"ha\"; },\n"
	    "  { id = \"B\"; host = \"hb\"; seed = true; }\n"
	    ");\n", NULL, NULL,
	    "@:6: 'seed' is a mesh feature: with engine = \"nats\" no node "
	    "dials another, and a Python prototype node cannot read the "
	    "stream");
	assert_errors("node_id = \"A\";\nengine = \"nats\";\n" NODES_AB,
	    NULL, NULL, "@:2: engine = \"nats\" needs a 'nats' group: "
	    "nats = { servers = [ \"nats://...\" ]; };");
	assert_errors("node_id = \"A\";\nengine = \"nats\";\nnats = {};\n"
	    NODES_AB, NULL, NULL, "@:3: missing required key 'servers'");
	assert_errors("node_id = \"A\";\nengine = \"nats\";\nnats = \"n\";\n"
	    NODES_AB, NULL, NULL,
	    "@:3: 'nats' must be a group: { key = value; ... }");
	assert_errors(
	    "node_id = \"A\";\n"
	    "engine = \"nats\";\n"
	    "nats = {\n"
	    "  servers = ( \"http://x\", 7,\n"
	    "    \"nats://h:0\", \"nats://h:4222\", \"nats:// h\" );\n"
	    "  stream = \"A\";\n"
	    "  replicas = 6;\n"
	    "  token = \"t\";\n"
	    "  user = \"u\";\n"
	    "  tls_key = \"/k\";\n"
	    "  colour = 1;\n"
	    "};\n"
	    NODES_AB, NULL, NULL,
	    "@:4: each entry of 'servers' must be a URL nats://host[:port] "
	    "or tls://host[:port], not \"http://x\"\n"
	    "@:4: each entry of 'servers' must be a string\n"
	    "@:5: each entry of 'servers' must be a URL nats://host[:port] "
	    "or tls://host[:port], not \"nats://h:0\"\n"
	    "@:5: each entry of 'servers' must be a URL nats://host[:port] "
	    "or tls://host[:port], not \"nats:// h\"\n"
	    "@:7: 'replicas' must be between 1 and 5, not 6\n"
	    "@:11: unknown key 'colour'\n"
	    "@:9: 'user' and 'password' go together\n"
	    "@:8: give one of 'token', 'user' and 'password', or 'creds'\n"
	    "@:10: 'tls_cert' and 'tls_key' go together\n"
	    "@:6: 'stream' must not be a node id: \"A\" is the origin of "
	    "every message in the stream");
	assert_errors("node_id = \"A\";\nengine = \"nats\";\n"
	    "nats = { servers = \"nats://n\"; };\n" NODES_AB, NULL, NULL,
	    "@:3: 'servers' must be a list of strings: [ \"...\", ... ]");
	assert_errors("node_id = \"A\";\nengine = \"nats\";\n"
	    "nats = { servers = [ ]; };\n" NODES_AB, NULL, NULL,
	    "@:3: 'servers' must have at least one entry");
}

/*
 * Every key of the nats group, as config_print() shows it, is in the
 * shipped example and in nodetalk.conf(5).
 */
static void
test_nats_keys_documented(void **state)
{
	struct nt_config	*c;
	char			*conf, *man, *out, *line, *tail, *eq, key[80];
	const char		*paths[] = { "etc/nodetalk.conf",
				    "doc/nodetalk.conf.5" };
	size_t			 len;
	FILE			*fp;
	int			 in = 0, n = 0;

	(void)state;
	line = srcpath(paths[0]);
	conf = read_file(line);
	free(line);
	line = srcpath(paths[1]);
	man = read_file(line);
	free(line);
	c = load_text_ok(NATS_AB, NULL, NULL);
	assert_non_null(fp = open_memstream(&out, &len));
	config_print(fp, c);
	fclose(fp);
	for (line = strtok_r(out, "\n", &tail); line != NULL;
	    line = strtok_r(NULL, "\n", &tail)) {
		if (strncmp(line, "engine = ", 9) == 0 ||
		    strncmp(line, "nats = {", 8) == 0) {
			in = line[0] == 'n';
			snprintf(key, sizeof(key), ".It Ic %.*s ",
			    (int)(strchr(line, ' ') - line), line);
		} else if (in && strncmp(line, "  ", 2) == 0 &&
		    (eq = strstr(line, " = ")) != NULL) {
			snprintf(key, sizeof(key), ".It Ic %.*s ",
			    (int)(eq - line - 2), line + 2);
			n++;
		} else {
			in &= strcmp(line, "};") != 0;
			continue;
		}
		if (strstr(man, key) == NULL)
			fail_msg("%s not in %s", key, paths[1]);
		memmove(key, key + 7, strlen(key + 7) + 1);
		strcat(key, "=");
		if (strstr(conf, key) == NULL)
			fail_msg("%s not in %s", key, paths[0]);
	}
	assert_int_equal(n, 13);
	free(out);
	free(conf);
	free(man);
	config_free(c);
}
#else
static void
test_engine_nats(void **state)
{
	(void)state;
	assert_errors(NATS_AB, NULL, NULL, "@:2: this nodetalkd was built "
	    "without the NATS engine (configure found no libnats; install "
	    "libnats-dev and rebuild)");
}
#endif

static void
test_fsync_policy_name(void **state)
{
	(void)state;
	assert_string_equal(fsync_policy_name(FSYNC_NONE), "none");
	assert_string_equal(fsync_policy_name(FSYNC_BATCH), "batch");
	assert_string_equal(fsync_policy_name(FSYNC_ALWAYS), "always");
	config_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_example),
		cmocka_unit_test(test_shipped_local),
		cmocka_unit_test(test_shipped_example_documents_keys),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_and_overrides),
		cmocka_unit_test(test_node_id_option),
		cmocka_unit_test(test_nt_port),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_bad_type),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_bad_strings),
		cmocka_unit_test(test_frame_vs_message),
		cmocka_unit_test(test_duplicate_id),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_unknown_node),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_cannot_open),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_print_round_trip),
		cmocka_unit_test(test_print_golden),
		cmocka_unit_test(test_nodes_equal),
		cmocka_unit_test(test_fsync_policy_name),
		cmocka_unit_test(test_engine_default),
		cmocka_unit_test(test_engine_nats),
#ifdef HAVE_NATS
		cmocka_unit_test(test_shipped_nats),
		cmocka_unit_test(test_nats_errors),
		cmocka_unit_test(test_nats_keys_documented),
#endif
	};

	return (cmocka_run_group_tests(tests, setup, teardown));
}
