/*
 * json.h: the JSON of the wire frames, read and written without a tree and
 * without floating point (json.c).  Frames are flat objects of strings,
 * integers and booleans, with at most one level more (`since`, `have`);
 * every chat passes through here several times on its way, so the reader
 * allocates nothing and the writer appends to one buffer.
 */
#ifndef JSON_H
#define JSON_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

/* Integers are exact up to this (2^53 - 1, what every JSON reader holds). */
#define JSON_UINT_MAX	9007199254740991ULL

enum json_type {
	JSON_NONE = 0,
	JSON_STRING,
	JSON_NUMBER,
	JSON_TRUE,
	JSON_FALSE,
	JSON_NULL,
	JSON_OBJECT,
	JSON_ARRAY
};

/* A value as it stands in the text; a string without its quotes. */
struct json_val {
	enum json_type	 type;
	const char	*p;
	size_t		 len;
	int		 escaped;	/* a string holding a backslash */
};

/* The members of one object, in order. */
struct json_iter {
	const char	*p;
	const char	*end;
	int		 n;		/* members read */
};

/*
 * Reading.  json_object() sets it to the first member of the object buf
 * holds (0, or -1 when buf holds none); json_member() then gives each
 * member in turn, checked as it goes: 1, 0 after the last, -1 on bad
 * JSON; json_object_rest() then says whether nothing but whitespace
 * follows (0) or not (-1).  json_object_val() starts on a value of type
 * JSON_OBJECT, whose text was checked when it was read.
 */
int	 json_object(const char *buf, size_t len, struct json_iter *);
int	 json_object_rest(const struct json_iter *);
void	 json_object_val(const struct json_val *, struct json_iter *);
int	 json_member(struct json_iter *, struct json_val *key,
	    struct json_val *val);
/* Whether a key, once unescaped, is s. */
int	 json_key_is(const struct json_val *, const char *s);
/*
 * A string's text, unescaped, into out (room for v->len + 1 bytes, which
 * is always enough); its length, or -1 when it would hold a NUL byte.
 */
ssize_t	 json_str(const struct json_val *, char *out);
/*
 * A whole number: digits, maybe with a fraction of zeros or an exponent,
 * as long as the value is exactly a non-negative integer up to
 * JSON_UINT_MAX.  0, or -1 (negative, fractional, too large, not a
 * number).
 */
int	 json_uint(const struct json_val *, uint64_t *);

/* Writing: text appended to a buffer that grows (xmalloc). */
struct json_out {
	char		*buf;
	size_t		 len;
	size_t		 cap;
	int		 first;		/* no member yet in this object */
};

#define JSON_OUT_INIT	{ NULL, 0, 0, 1 }

void	 json_out_reset(struct json_out *);
void	 json_out_free(struct json_out *);
/* Hand the text over (NUL-terminated; the caller frees); out is reset. */
char	*json_out_take(struct json_out *, size_t *len);
void	 json_raw(struct json_out *, const char *, size_t);
void	 json_begin(struct json_out *);
void	 json_end(struct json_out *);
void	 json_key(struct json_out *, const char *key);
void	 json_add_str(struct json_out *, const char *key, const char *s);
void	 json_add_uint(struct json_out *, const char *key, uint64_t);
void	 json_add_int(struct json_out *, const char *key, int64_t);
void	 json_add_bool(struct json_out *, const char *key, int);
void	 json_string(struct json_out *, const char *s);

#endif /* JSON_H */
