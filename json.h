/*
 * json.h: a small JSON reader for the two JSON documents grass.c reads: Hugging Face `config.json` files and
 * safetensors headers. Parses a whole document into a tree; objects keep their keys in file order.
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_JSON_H
#define GRASS_JSON_H

#include <math.h>
#include "common.h"

enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

typedef struct JsonValue {
    int type;
    double number;            // JSON_NUMBER, JSON_BOOL (0 or 1)
    char *string;             // JSON_STRING
    int count;                // JSON_ARRAY, JSON_OBJECT: number of items
    char **keys;              // JSON_OBJECT: count keys
    struct JsonValue *items;  // JSON_ARRAY, JSON_OBJECT: count values
} JsonValue;

typedef struct {
    const char *s, *end;
    const char *error;  // first error message, NULL while parsing succeeds
} JsonParser;

static void json_skip_space(JsonParser *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static void json_append_utf8(char *out, size_t *n, unsigned cp) {
    if (cp < 0x80) { out[(*n)++] = (char)cp; }
    else if (cp < 0x800) { out[(*n)++] = (char)(0xC0 | (cp >> 6)); out[(*n)++] = (char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (cp >> 12)); out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (cp >> 18)); out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int json_hex4(JsonParser *p, unsigned *cp) {
    if (p->end - p->s < 4) return 0;
    *cp = 0;
    for (int i = 0; i < 4; i++) {
        char c = *p->s++;
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        *cp = *cp * 16 + (unsigned)d;
    }
    return 1;
}

// Parses a string literal at p->s (which points at the opening quote). Returns a malloc'd UTF-8 string.
static char *json_parse_string(JsonParser *p) {
    p->s++;
    const char *start = p->s;
    while (p->s < p->end && *p->s != '"') p->s += (*p->s == '\\') ? 2 : 1;
    if (p->s >= p->end) { p->error = "unterminated string"; return NULL; }
    char *out = (char *)xmalloc((size_t)(p->s - start) + 1);  // escapes never grow the text
    size_t n = 0;
    p->s = start;
    while (*p->s != '"') {
        char c = *p->s++;
        if (c != '\\') { out[n++] = c; continue; }
        char e = *p->s++;
        switch (e) {
            case '"': case '\\': case '/': out[n++] = e; break;
            case 'b': out[n++] = '\b'; break;
            case 'f': out[n++] = '\f'; break;
            case 'n': out[n++] = '\n'; break;
            case 'r': out[n++] = '\r'; break;
            case 't': out[n++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (!json_hex4(p, &cp)) { p->error = "bad \\u escape"; free(out); return NULL; }
                if (cp >= 0xD800 && cp < 0xDC00 && p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') {
                    p->s += 2;
                    if (!json_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) { p->error = "bad surrogate pair"; free(out); return NULL; }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                json_append_utf8(out, &n, cp);
                break;
            }
            default: p->error = "bad escape in string"; free(out); return NULL;
        }
    }
    p->s++;
    out[n] = '\0';
    return out;
}

static void json_free_value(JsonValue *v);

static int json_parse_value(JsonParser *p, JsonValue *v, int depth) {
    memset(v, 0, sizeof(*v));
    json_skip_space(p);
    if (p->s >= p->end) { p->error = "unexpected end of document"; return 0; }
    if (depth > 64) { p->error = "nesting too deep"; return 0; }
    char c = *p->s;
    if (c == '{' || c == '[') {
        int is_obj = c == '{';
        v->type = is_obj ? JSON_OBJECT : JSON_ARRAY;
        p->s++;
        int cap = 0;
        json_skip_space(p);
        if (p->s < p->end && *p->s == (is_obj ? '}' : ']')) { p->s++; return 1; }
        for (;;) {
            if (v->count == cap) {
                cap = cap ? 2 * cap : 8;
                v->items = (JsonValue *)realloc(v->items, cap * sizeof(JsonValue));
                if (is_obj) v->keys = (char **)realloc(v->keys, cap * sizeof(char *));
                if (!v->items || (is_obj && !v->keys)) fail("out of host memory parsing JSON");
            }
            if (is_obj) {
                json_skip_space(p);
                if (p->s >= p->end || *p->s != '"') { p->error = "expected a key string"; return 0; }
                char *key = json_parse_string(p);
                if (!key) return 0;
                v->keys[v->count] = key;
                json_skip_space(p);
                if (p->s >= p->end || *p->s != ':') { free(key); p->error = "expected ':'"; return 0; }
                p->s++;
            }
            if (!json_parse_value(p, &v->items[v->count], depth + 1)) { if (is_obj) free(v->keys[v->count]); return 0; }
            v->count++;
            json_skip_space(p);
            if (p->s < p->end && *p->s == ',') { p->s++; continue; }
            if (p->s < p->end && *p->s == (is_obj ? '}' : ']')) { p->s++; return 1; }
            p->error = is_obj ? "expected ',' or '}'" : "expected ',' or ']'";
            return 0;
        }
    }
    if (c == '"') {
        v->type = JSON_STRING;
        v->string = json_parse_string(p);
        return v->string != NULL;
    }
    static const char *words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(words[i]);
        if ((size_t)(p->end - p->s) >= len && !strncmp(p->s, words[i], len)) {
            v->type = i < 2 ? JSON_BOOL : JSON_NULL;
            v->number = i == 0;
            p->s += len;
            return 1;
        }
    }
    char buf[64];
    size_t n = 0;
    while (p->s + n < p->end && n < sizeof(buf) - 1 && strchr("+-0123456789.eE", p->s[n])) { buf[n] = p->s[n]; n++; }
    buf[n] = '\0';
    char *stop;
    v->number = strtod(buf, &stop);
    if (n == 0 || stop != buf + n) { p->error = "unexpected character"; return 0; }
    if (!isfinite(v->number)) { p->error = "number too large for a double"; return 0; }
    v->type = JSON_NUMBER;
    p->s += n;
    return 1;
}

static void json_free_value(JsonValue *v) {
    for (int i = 0; i < v->count; i++) {
        json_free_value(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
}

// Parses text[0..len) into *out. Fails with "what: <reason> at byte N" on malformed JSON.
static void json_parse(JsonValue *out, const char *text, size_t len, const char *what) {
    JsonParser p = {text, text + len, NULL};
    int ok = json_parse_value(&p, out, 0);
    if (ok) {
        json_skip_space(&p);
        if (p.s != p.end) { p.error = "trailing characters after the document"; ok = 0; }
    }
    if (!ok) fail("%s is not valid JSON: %s at byte %ld", what, p.error, (long)(p.s - text));
}

// The value of key in an object, or NULL.
static const JsonValue *json_get(const JsonValue *obj, const char *key) {
    if (obj->type != JSON_OBJECT) return NULL;
    for (int i = 0; i < obj->count; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

#endif
