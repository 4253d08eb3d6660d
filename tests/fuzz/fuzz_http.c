/*
 * fuzz_http.c: libFuzzer target for the HTTP side of the port: request
 * heads as anyone on the network can send them (http_parse_request and
 * what the ws worker asks of a parsed request), and the handshake answer
 * a dialled peer sends back (ws_client_response).  Nothing may crash,
 * leak or read out of bounds, and a parsed request must be well formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "nodetalk.h"
#include "ws.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* What the ws worker does with a request head it parsed. */
static void
poke(struct http_req *req)
{
	struct evbuffer	*out;
	int		 i;

	if (strlen(req->method) >= sizeof(req->method) ||
	    strlen(req->path) >= sizeof(req->path) ||
	    req->nhdr < 0 || req->nhdr > HTTP_MAX_HEADERS)
		abort();
	for (i = 0; i < req->nhdr; i++)
		if (req->hdr[i].name == NULL || req->hdr[i].value == NULL)
			abort();
	(void)http_header(req, "Content-Length");
	(void)http_header_has_token(req, "Connection", "upgrade");
	(void)http_keepalive(req);
	if (ws_is_upgrade(req) && ws_check_upgrade(req) == 0) {
		if ((out = evbuffer_new()) == NULL)
			abort();
		ws_server_accept(out, req);
		evbuffer_free(out);
	}
}

static void
requests(const uint8_t *data, size_t len)
{
	struct evbuffer	*in;
	struct http_req	 req;
	int		 rv, status, n = 0;

	if ((in = evbuffer_new()) == NULL)
		abort();
	evbuffer_add(in, data, len);
	/* Pipelined requests, as a keep-alive connection reads them. */
	while (n++ < 64 && (rv = http_parse_request(in, &req, &status)) != 0) {
		if (rv == -1) {
			if (status < 400 || status > 599)
				abort();
			break;
		}
		poke(&req);
		http_req_clear(&req);
	}
	evbuffer_free(in);
}

/* The same bytes as the answer to our own upgrade request. */
static void
response(const uint8_t *data, size_t len)
{
	struct evbuffer	*in;
	char		*cause = NULL;

	if ((in = evbuffer_new()) == NULL)
		abort();
	evbuffer_add(in, data, len);
	if (ws_client_response(in, "dGhlIHNhbXBsZSBub25jZQ==", &cause) == -1 &&
	    cause == NULL)
		abort();
	free(cause);
	evbuffer_free(in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	requests(data, len);
	response(data, len);
	return (0);
}
