/*
 * bpe.h: a byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (Llama-3's), encoding and
 * decoding exactly as the `tokenizers` library does, so that `tokenize` and the trainers take such a model
 * beside SentencePiece ones. tokenizer/tokenizer.h includes it and calls it through its own API for a
 * tokenizer.json file. Plain C that also compiles as C++. Names start with bbpe_ (byte-level BPE): the
 * SentencePiece code of tokenizer.h has the bpe_ ones.
 *
 *   BbpeModel *bbpe_load(const char *path, const char *text, size_t len);   text: the file's bytes
 *   int  *bbpe_encode(const BbpeModel *m, const char *text, size_t len, int add_bos, int add_eos, size_t *n);
 *   char *bbpe_decode(const BbpeModel *m, const int *ids, size_t n, size_t *len);
 *   const char *bbpe_piece(const BbpeModel *m, int id, size_t *len);   a token's text as tokenizer.json has it
 *   int   bbpe_piece_id(const BbpeModel *m, const char *piece, size_t len);
 *   void  bbpe_free(BbpeModel *m);
 *
 * What is implemented, and refused otherwise with one line naming the file and what is expected: model BPE
 * (merges as "a b" strings or ["a", "b"] pairs; ignore_merges; no dropout, no subword prefix or suffix), no
 * normalizer, the pre-tokenizer Sequence [Split (Llama-3's pattern, Isolated), ByteLevel (no prefix space, no
 * regex)], the ByteLevel decoder, a post-processor of ByteLevel and TemplateProcessing that puts at most one
 * special token before the text and none after it, added tokens with lstrip, rstrip, normalized and special
 * (single_word is refused), no truncation or padding.
 *
 * Encoding, as the library does it:
 * - text that is not valid UTF-8 (the library takes a string) has each maximal invalid subsequence replaced by
 *   U+FFFD, as Python's bytes.decode(errors="replace") and Rust's String::from_utf8_lossy do;
 * - the added tokens split the text first, leftmost-longest: those with normalized false on the whole text,
 *   then those with normalized true on the rest (with no normalizer the text is the same). lstrip and rstrip
 *   take the white space beside the token into it (Rust's char::is_whitespace there, the same characters as
 *   the pattern's \s). Special or not, an added token in the text becomes its id;
 * - the rest is cut by Llama-3's pattern (bbpe_pretoken_len: the regex's alternatives in order, as the
 *   backtracking engine tries them, with the Unicode classes of tokenizer/unicode_tables.h);
 * - each piece is mapped to bytes (the ByteLevel alphabet is a bijection of bytes, so this code works on bytes)
 *   and merged: with ignore_merges a piece that is a token is that token; else the adjacent pair with the
 *   lowest merge rank is merged, ties to the leftmost, until no pair has a merge (a priority queue, as the
 *   library's); a long text copies the ids of a piece it has merged before;
 * - add_bos / add_eos put bos_id / eos_id around the ids.
 * Decoding: special added tokens are dropped (the library's default, skip_special_tokens), each token's
 * characters map back to bytes (a token with a character outside the ByteLevel alphabet gives its own UTF-8
 * bytes), and invalid UTF-8 in the result becomes U+FFFD per maximal invalid subsequence.
 *
 * BOS and EOS: from tokenizer_config.json beside the file where it exists (bos_token, eos_token; add_bos_token
 * false means no BOS), else BOS is the special token the post-processor's template puts before the text and
 * there is no EOS. A loaded model is read-only: encode and decode keep their working memory per call.
 */
#ifndef GRASS_BPE_H
#define GRASS_BPE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "json.h"
#include "tokenizer/unicode_tables.h"

// Llama-3's split pattern, the one bbpe_pretoken_len implements.
#define BBPE_LLAMA3_PATTERN                                                                                     \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {   // a slot of a hash table of strings
    uint32_t hash;
    int id;        // -1: empty
} BbpeSlot;

typedef struct {   // a merge: the pair of token ids (key, 0 for an empty slot) -> its rank and the merged token
    uint64_t key;
    int rank, id;
} BbpeMerge;

typedef struct {
    int id;
    unsigned char lstrip, rstrip;
} BbpeAdded;

typedef struct {
    int n_tokens;               // ids 0 .. n_tokens - 1: the model's vocabulary, then the added tokens
    int n_model;                // the model's vocabulary: ids 0 .. n_model - 1
    int bos_id, eos_id, unk_id; // -1 where there is none
    int ignore_merges;
    // token i: its text as in tokenizer.json at text_data + text_off[i] (NUL-terminated), and the bytes decode
    // gives for it at bytes_data + bytes_off[i] .. bytes_off[i + 1]
    char *text_data, *bytes_data;
    uint32_t *text_off, *bytes_off;
    unsigned char *special;     // per id: a special added token (decode drops it)
    BbpeSlot *text_table;       // token text -> id, every token
    BbpeSlot *bytes_table;      // token bytes -> id, the model's tokens whose text is all ByteLevel characters
    uint32_t text_mask, bytes_mask;
    BbpeMerge *merges;
    uint32_t merge_mask;
    int byte_id[256];           // the token of each single byte
    unsigned char ascii_class[128];
    // added tokens, matched in the text in two passes: normalized false (pass 0), then normalized true
    BbpeAdded *added;           // by index in the file
    int n_added;
    BbpeSlot *added_table;      // content -> index in added, both passes
    uint32_t added_mask;
    unsigned char *added_pass;  // per index in added
    unsigned char added_first[2][256];   // whether a token of the pass starts with this byte
    int *added_lens[2];         // the distinct lengths of the pass's tokens, longest first
    int n_added_lens[2];
} BbpeModel;

// ----------------------------------------------------------------------------------------------------------
// bytes, UTF-8, hashing

// The hash of a piece's bytes (FNV-1a), for the piece tables of both tokenizers (tokenizer.h's too).
static uint32_t piece_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

// The length of the UTF-8 sequence at s (n > 0 bytes available): a valid character (*valid = 1), or the
// maximal invalid subsequence, at least one byte (*valid = 0), as in the Unicode standard's recommended
// replacement (what from_utf8_lossy and Python's errors="replace" do).
static int bbpe_utf8_scan(const unsigned char *s, size_t n, int *valid) {
    unsigned c = s[0];
    *valid = 1;
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;   // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else { *valid = 0; return 1; }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || s[k] < lo || s[k] > hi) { *valid = 0; return k; }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

// Whether s[0..n) is valid UTF-8.
static int bbpe_utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int valid;
        i += (size_t)bbpe_utf8_scan((const unsigned char *)s + i, n - i, &valid);
        if (!valid) return 0;
    }
    return 1;
}

// s[0..n) with each maximal invalid subsequence replaced by U+FFFD, into out (room for 3 n); returns the length.
static size_t bbpe_utf8_lossy(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int valid, k = bbpe_utf8_scan((const unsigned char *)s + i, n - i, &valid);
        if (valid) memcpy(out + o, s + i, (size_t)k), o += (size_t)k;
        else memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3;
        i += (size_t)k;
    }
    return o;
}

// The code point of the valid UTF-8 character at s and its length.
static uint32_t bbpe_char(const unsigned char *s, int *len) {
    unsigned c = s[0];
    if (c < 0x80) { *len = 1; return c; }
    if (c < 0xE0) { *len = 2; return (c & 0x1F) << 6 | (s[1] & 0x3F); }
    if (c < 0xF0) { *len = 3; return (c & 0x0F) << 12 | (s[1] & 0x3F) << 6 | (s[2] & 0x3F); }
    *len = 4;
    return (c & 0x07) << 18 | (s[1] & 0x3F) << 12 | (s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

// The ByteLevel alphabet: byte b is the character bbpe_byte_char(b); the printable bytes stand for themselves,
// the others take the code points from U+0100 on, in byte order.
static uint32_t bbpe_byte_char(int b) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (printable) return (uint32_t)b;
    int k = 0;
    for (int i = 0; i < b; i++) k += !((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF));
    return 0x100 + (uint32_t)k;
}

// ----------------------------------------------------------------------------------------------------------
// Unicode classes of the pattern

static int bbpe_class_of(uint32_t cp) {
    int lo = 0, hi = (int)(sizeof(unicode_class_ranges) / sizeof(unicode_class_ranges[0])) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < unicode_class_ranges[mid].first) hi = mid - 1;
        else if (cp > unicode_class_ranges[mid].last) lo = mid + 1;
        else return unicode_class_ranges[mid].cls;
    }
    return UNICODE_OTHER;
}

static int bbpe_class(const BbpeModel *m, uint32_t cp) { return cp < 128 ? m->ascii_class[cp] : bbpe_class_of(cp); }

// The ASCII letter a character folds to where it is a letter of the contractions, else 0.
static int bbpe_fold(uint32_t cp) {
    for (size_t i = 0; i < sizeof(unicode_contraction_folds) / sizeof(unicode_contraction_folds[0]); i++)
        if (unicode_contraction_folds[i][0] == cp) return (int)unicode_contraction_folds[i][1];
    return 0;
}

// The end of the run of characters of class cls that starts at s[i] (n: the end of the text).
static size_t bbpe_run_end(const BbpeModel *m, const unsigned char *s, size_t i, size_t n, int cls) {
    while (i < n) {
        int len;
        if (bbpe_class(m, bbpe_char(s + i, &len)) != cls) break;
        i += (size_t)len;
    }
    return i;
}

// The length of the piece of Llama-3's pattern that starts at s[i] (i < n, valid UTF-8): its alternatives
// tried in order, each as the backtracking engine matches it. Every character starts some alternative.
static size_t bbpe_pretoken_len(const BbpeModel *m, const unsigned char *s, size_t i, size_t n) {
    int l0, l1 = 0, l2;
    uint32_t c0 = bbpe_char(s + i, &l0);
    int k0 = bbpe_class(m, c0);
    size_t j = i + (size_t)l0;
    int k1 = -1;   // class of the second character, -1 at the end
    uint32_t c1 = 0;
    if (j < n) { c1 = bbpe_char(s + j, &l1); k1 = bbpe_class(m, c1); }
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (c0 == '\'' && k1 >= 0) {
        int f1 = bbpe_fold(c1);
        if (f1 == 's' || f1 == 't' || f1 == 'm' || f1 == 'd') return 1 + (size_t)l1;
        if ((f1 == 'r' || f1 == 'v' || f1 == 'l') && j + (size_t)l1 < n) {
            int f2 = bbpe_fold(bbpe_char(s + j + l1, &l2));
            if (f2 == (f1 == 'l' ? 'l' : 'e')) return 1 + (size_t)l1 + (size_t)l2;
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (k0 == UNICODE_LETTER) return bbpe_run_end(m, s, j, n, UNICODE_LETTER) - i;
    if (c0 != '\r' && c0 != '\n' && k0 != UNICODE_NUMBER && k1 == UNICODE_LETTER)
        return bbpe_run_end(m, s, j + (size_t)l1, n, UNICODE_LETTER) - i;
    // \p{N}{1,3}
    if (k0 == UNICODE_NUMBER) {
        size_t e = j;
        for (int k = 1; k < 3 && e < n; k++) {
            int len;
            if (bbpe_class(m, bbpe_char(s + e, &len)) != UNICODE_NUMBER) break;
            e += (size_t)len;
        }
        return e - i;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    size_t o = k0 == UNICODE_OTHER ? i : (c0 == ' ' && k1 == UNICODE_OTHER) ? j : n;
    if (o < n) {
        size_t e = bbpe_run_end(m, s, o, n, UNICODE_OTHER);
        while (e < n && (s[e] == '\r' || s[e] == '\n')) e++;
        return e - i;
    }
    // the rest start with white space: \s*[\r\n]+ (up to the last line break of the run), else \s+(?!\S) (all
    // of the run at the end of the text, else all but its last character), else \s+ (a single character)
    size_t e = i, last_break = 0, last_start = i;
    while (e < n) {
        int len;
        if (bbpe_class(m, bbpe_char(s + e, &len)) != UNICODE_SPACE) break;
        if (s[e] == '\r' || s[e] == '\n') last_break = e + 1;
        last_start = e;
        e += (size_t)len;
    }
    if (last_break) return last_break - i;
    if (e == n || last_start == i) return e - i;
    return last_start - i;
}

// ----------------------------------------------------------------------------------------------------------
// lookups

static int bbpe_table_find(const BbpeSlot *table, uint32_t mask, const char *data, const uint32_t *off,
                          const char *s, size_t len) {
    uint32_t h = piece_hash(s, len);
    for (uint32_t slot = h & mask;; slot = (slot + 1) & mask) {
        int id = table[slot].id;
        if (id < 0) return -1;
        if (table[slot].hash == h && off[id + 1] - off[id] == len && memcmp(data + off[id], s, len) == 0) return id;
    }
}

static void bbpe_table_put(BbpeSlot *table, uint32_t mask, const char *s, size_t len, int id) {
    uint32_t h = piece_hash(s, len), slot = h & mask;
    while (table[slot].id >= 0) slot = (slot + 1) & mask;
    table[slot].hash = h;
    table[slot].id = id;
}

static BbpeSlot *bbpe_table_new(size_t n, uint32_t *mask) {
    uint32_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    BbpeSlot *t = (BbpeSlot *)xmalloc(cap * sizeof(BbpeSlot));
    for (uint32_t i = 0; i < cap; i++) t[i].id = -1;
    *mask = cap - 1;
    return t;
}

// The id of a token by its text (text_off spans include the NUL after each text).
static int bbpe_piece_id(const BbpeModel *m, const char *piece, size_t len) {
    uint32_t h = piece_hash(piece, len);
    for (uint32_t slot = h & m->text_mask;; slot = (slot + 1) & m->text_mask) {
        int id = m->text_table[slot].id;
        if (id < 0) return -1;
        const char *t = m->text_data + m->text_off[id];
        if (m->text_table[slot].hash == h && m->text_off[id + 1] - m->text_off[id] - 1 == len && memcmp(t, piece, len) == 0)
            return id;
    }
}

static const char *bbpe_piece(const BbpeModel *m, int id, size_t *len) {
    if (id < 0 || id >= m->n_tokens) fail("token id %d is out of range [0, %d)", id, m->n_tokens);
    if (len) *len = m->text_off[id + 1] - m->text_off[id] - 1;
    return m->text_data + m->text_off[id];
}

static uint32_t bbpe_merge_slot(uint64_t key, uint32_t mask) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static const BbpeMerge *bbpe_merge_find(const BbpeModel *m, int left, int right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    for (uint32_t slot = bbpe_merge_slot(key, m->merge_mask);; slot = (slot + 1) & m->merge_mask) {
        if (m->merges[slot].key == key) return &m->merges[slot];
        if (m->merges[slot].key == 0) return NULL;
    }
}

// ----------------------------------------------------------------------------------------------------------
// loading

// A JSON value's member, where obj is an object (json_get is linear: fine for the few keys of small objects).
static const JsonValue *bbpe_member(const JsonValue *obj, const char *key) {
    const JsonValue *v = json_get(obj, key);
    return v && v->type != JSON_NULL ? v : NULL;
}

static int bbpe_bool(const char *path, const JsonValue *obj, const char *key, const char *where) {
    const JsonValue *v = bbpe_member(obj, key);
    if (!v) return 0;
    if (v->type != JSON_BOOL) fail("%s: %s.%s is not true or false", path, where, key);
    return (int)v->number;
}

static const char *bbpe_type(const JsonValue *v) {
    const JsonValue *t = v && v->type == JSON_OBJECT ? bbpe_member(v, "type") : NULL;
    return t && t->type == JSON_STRING ? t->string : NULL;
}

static int bbpe_is_type(const JsonValue *v, const char *type) {
    const char *t = bbpe_type(v);
    return t && strcmp(t, type) == 0;
}

// The pre-tokenizer must be Llama-3's.
static void bbpe_check_pretokenizer(const char *path, const JsonValue *pt) {
    const char *want = "expected Llama-3's: Sequence [Split (its regex, Isolated), ByteLevel (add_prefix_space false, "
                       "use_regex false)]";
    const JsonValue *seq = pt && bbpe_is_type(pt, "Sequence") ? bbpe_member(pt, "pretokenizers") : NULL;
    if (!seq || seq->type != JSON_ARRAY || seq->count != 2)
        fail("%s: the pre_tokenizer (%s) is not implemented; %s", path, pt ? (bbpe_type(pt) ? bbpe_type(pt) : "?") : "none", want);
    const JsonValue *split = &seq->items[0], *bl = &seq->items[1];
    const JsonValue *pattern = bbpe_is_type(split, "Split") ? bbpe_member(split, "pattern") : NULL;
    const JsonValue *regex = pattern && pattern->type == JSON_OBJECT ? bbpe_member(pattern, "Regex") : NULL;
    const JsonValue *behavior = bbpe_is_type(split, "Split") ? bbpe_member(split, "behavior") : NULL;
    if (!regex || regex->type != JSON_STRING || strcmp(regex->string, BBPE_LLAMA3_PATTERN) != 0)
        fail("%s: the pre_tokenizer's Split pattern is not Llama-3's regex; %s", path, want);
    if (!behavior || behavior->type != JSON_STRING || strcmp(behavior->string, "Isolated") != 0 ||
        bbpe_bool(path, split, "invert", "Split"))
        fail("%s: the pre_tokenizer's Split is not behavior Isolated without invert; %s", path, want);
    if (!bbpe_is_type(bl, "ByteLevel") || bbpe_bool(path, bl, "add_prefix_space", "ByteLevel") ||
        bbpe_bool(path, bl, "use_regex", "ByteLevel"))
        fail("%s: the pre_tokenizer's second step is not ByteLevel with add_prefix_space and use_regex false; %s", path, want);
}

// The post-processor's BOS: the one special token its template puts before the text, or -1.
static int bbpe_template_bos(const BbpeModel *m, const char *path, const JsonValue *pp) {
    const char *want = "expected null, ByteLevel, TemplateProcessing with at most one special token before the text "
                       "and none after it, or a Sequence of those";
    if (!pp) return -1;
    if (bbpe_is_type(pp, "ByteLevel")) return -1;
    if (bbpe_is_type(pp, "Sequence")) {
        const JsonValue *list = bbpe_member(pp, "processors");
        if (!list || list->type != JSON_ARRAY) fail("%s: the post_processor Sequence has no processors; %s", path, want);
        int bos = -1;
        for (int i = 0; i < list->count; i++) {
            int b = bbpe_template_bos(m, path, &list->items[i]);
            if (b >= 0 && bos >= 0) fail("%s: the post_processor adds more than one token before the text; %s", path, want);
            if (b >= 0) bos = b;
        }
        return bos;
    }
    if (!bbpe_is_type(pp, "TemplateProcessing"))
        fail("%s: the post_processor (%s) is not implemented; %s", path, bbpe_type(pp) ? bbpe_type(pp) : "?", want);
    const JsonValue *single = bbpe_member(pp, "single"), *specials = bbpe_member(pp, "special_tokens");
    if (!single || single->type != JSON_ARRAY) fail("%s: the TemplateProcessing has no single template; %s", path, want);
    int bos = -1, seen_text = 0;
    for (int i = 0; i < single->count; i++) {
        const JsonValue *item = &single->items[i], *v;
        if (item->type == JSON_OBJECT && (v = bbpe_member(item, "Sequence")) != NULL) {
            const JsonValue *id = v->type == JSON_OBJECT ? bbpe_member(v, "id") : NULL;
            if (!id || id->type != JSON_STRING || strcmp(id->string, "A") || seen_text)
                fail("%s: the single template's sequence is not A, once; %s", path, want);
            seen_text = 1;
        } else if (item->type == JSON_OBJECT && (v = bbpe_member(item, "SpecialToken")) != NULL) {
            const JsonValue *name = v->type == JSON_OBJECT ? bbpe_member(v, "id") : NULL;
            if (!name || name->type != JSON_STRING) fail("%s: a template SpecialToken has no id; %s", path, want);
            if (seen_text || bos >= 0) fail("%s: the single template adds tokens other than one before the text; %s", path, want);
            const JsonValue *sp = specials && specials->type == JSON_OBJECT ? bbpe_member(specials, name->string) : NULL;
            const JsonValue *ids = sp && sp->type == JSON_OBJECT ? bbpe_member(sp, "ids") : NULL;
            if (!ids || ids->type != JSON_ARRAY || ids->count != 1 || ids->items[0].type != JSON_NUMBER)
                fail("%s: the template's special token \"%s\" is not in special_tokens with one id; %s", path, name->string, want);
            double d = ids->items[0].number;
            if (!(d >= 0 && d < m->n_tokens) || d != (double)(int)d)
                fail("%s: the template's special token \"%s\" has id %g, out of range [0, %d)", path, name->string, d, m->n_tokens);
            bos = (int)d;
        } else {
            fail("%s: item %d of the single template is neither Sequence nor SpecialToken; %s", path, i, want);
        }
    }
    if (!seen_text) fail("%s: the single template has no sequence A; %s", path, want);
    return bos;
}

// The id a tokenizer_config.json names (a string, or an object with "content"), -1 for null or absent.
static int bbpe_config_token(const BbpeModel *m, const char *config, const JsonValue *root, const char *key) {
    const JsonValue *v = bbpe_member(root, key);
    if (!v) return -1;
    if (v->type == JSON_OBJECT) v = bbpe_member(v, "content");
    if (!v || v->type != JSON_STRING) fail("%s: %s is not a token string (or an object with its content)", config, key);
    int id = bbpe_piece_id(m, v->string, strlen(v->string));
    if (id < 0) fail("%s: %s \"%s\" is not a token of the tokenizer beside it", config, key, v->string);
    return id;
}

// BOS and EOS from tokenizer_config.json in the directory of path; returns 0 where there is no such file.
static int bbpe_load_config(BbpeModel *m, const char *path) {
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    const char *name = "tokenizer_config.json";
    char *config = (char *)xmalloc(dir + strlen(name) + 1);
    memcpy(config, path, dir);
    strcpy(config + dir, name);
    struct stat st;
    if (stat(config, &st) != 0 || !S_ISREG(st.st_mode)) { free(config); return 0; }
    size_t size;
    char *text = file_read_all(config, &size);
    JsonValue root;
    json_parse(&root, text, size, config);
    free(text);
    if (root.type != JSON_OBJECT) fail("%s: expected a JSON object", config);
    m->bos_id = bbpe_config_token(m, config, &root, "bos_token");
    m->eos_id = bbpe_config_token(m, config, &root, "eos_token");
    const JsonValue *add = bbpe_member(&root, "add_bos_token");
    if (add && add->type != JSON_BOOL) fail("%s: add_bos_token is not true or false", config);
    if (add && !add->number) m->bos_id = -1;
    json_free_value(&root);
    free(config);
    return 1;
}

// A token id in a JSON number: a whole number in [0, limit).
static int bbpe_json_id(const char *path, const JsonValue *v, int limit, const char *what, const char *text) {
    if (!v || v->type != JSON_NUMBER) fail("%s: %s \"%s\" has no numeric id", path, what, text);
    double d = v->number;
    if (!(d >= 0 && d < limit) || d != (double)(int)d)
        fail("%s: %s \"%s\" has id %g, expected a whole number in [0, %d)", path, what, text, d, limit);
    return (int)d;
}

static void bbpe_add_merge(BbpeModel *m, const char *path, int index, const char *a, size_t la, const char *b,
                          size_t lb, char **buf, size_t *cap) {
    int ia = bbpe_piece_id(m, a, la), ib = bbpe_piece_id(m, b, lb);
    if (ia < 0 || ia >= m->n_model || ib < 0 || ib >= m->n_model)
        fail("%s: merge %d (\"%.*s\" \"%.*s\") names a token that is not in the vocabulary", path, index, (int)la, a, (int)lb, b);
    xreserve((void **)buf, cap, la + lb);
    memcpy(*buf, a, la);
    memcpy(*buf + la, b, lb);
    int id = bbpe_piece_id(m, *buf, la + lb);
    if (id < 0 || id >= m->n_model)
        fail("%s: merge %d (\"%.*s\" \"%.*s\") makes a token that is not in the vocabulary", path, index, (int)la, a, (int)lb, b);
    uint64_t key = ((uint64_t)(uint32_t)ia << 32 | (uint32_t)ib) + 1;
    uint32_t slot = bbpe_merge_slot(key, m->merge_mask);
    while (m->merges[slot].key != 0 && m->merges[slot].key != key) slot = (slot + 1) & m->merge_mask;
    m->merges[slot].key = key;   // a pair listed twice keeps its last rank, as the library's map does
    m->merges[slot].rank = index;
    m->merges[slot].id = id;
}

static void bbpe_load_merges(BbpeModel *m, const char *path, const JsonValue *merges) {
    if (!merges || merges->type != JSON_ARRAY) fail("%s: model.merges is not an array", path);
    uint32_t cap = 16;
    while (cap < 2 * (uint32_t)merges->count + 2) cap *= 2;
    m->merges = (BbpeMerge *)xcalloc(cap, sizeof(BbpeMerge));
    m->merge_mask = cap - 1;
    char *buf = NULL;
    size_t buf_cap = 0;
    int rank = 0;
    for (int i = 0; i < merges->count; i++) {
        const JsonValue *v = &merges->items[i];
        if (v->type == JSON_STRING) {   // "a b"
            if (strncmp(v->string, "#version", 8) == 0) continue;   // a header line the library skips
            const char *space = strchr(v->string, ' ');
            if (!space || strchr(space + 1, ' '))
                fail("%s: merge %d \"%s\" is not two tokens separated by one space", path, i, v->string);
            bbpe_add_merge(m, path, rank++, v->string, (size_t)(space - v->string), space + 1, strlen(space + 1), &buf, &buf_cap);
        } else if (v->type == JSON_ARRAY && v->count == 2 && v->items[0].type == JSON_STRING && v->items[1].type == JSON_STRING) {
            const char *a = v->items[0].string, *b = v->items[1].string;
            bbpe_add_merge(m, path, rank++, a, strlen(a), b, strlen(b), &buf, &buf_cap);
        } else {
            fail("%s: merge %d is neither a string \"a b\" nor a pair [\"a\", \"b\"]", path, i);
        }
    }
    free(buf);
}

// The bytes decode gives for a token's text: its ByteLevel characters mapped back to bytes, or, where a
// character is outside that alphabet, the text's own bytes (*mapped = 0). Writes to out (room for len bytes).
static size_t bbpe_text_bytes(const int *char_byte, const char *text, size_t len, char *out, int *mapped) {
    size_t o = 0;
    *mapped = 1;
    for (size_t i = 0; i < len;) {
        int l;
        uint32_t cp = bbpe_char((const unsigned char *)text + i, &l);
        if (cp >= 0x144 || char_byte[cp] < 0) {
            memcpy(out, text, len);
            *mapped = 0;
            return len;
        }
        out[o++] = (char)char_byte[cp];
        i += (size_t)l;
    }
    return o;
}

// The added tokens, in the order of the file; text_data has room for their texts.
static void bbpe_load_added(BbpeModel *m, const char *path, const JsonValue *list, int **lens) {
    if (!list) return;
    unsigned char *seen = (unsigned char *)xcalloc((size_t)m->n_tokens + (size_t)list->count, 1);
    m->added = (BbpeAdded *)xcalloc((size_t)list->count + 1, sizeof(BbpeAdded));
    m->added_pass = (unsigned char *)xcalloc((size_t)list->count + 1, 1);
    m->added_table = bbpe_table_new((size_t)list->count, &m->added_mask);
    for (int i = 0; i < list->count; i++) {
        const JsonValue *a = &list->items[i];
        const JsonValue *content = a->type == JSON_OBJECT ? bbpe_member(a, "content") : NULL;
        if (!content || content->type != JSON_STRING || !content->string[0])
            fail("%s: added token %d has no content string", path, i);
        const char *s = content->string;
        size_t len = strlen(s);
        if (!bbpe_utf8_valid(s, len)) fail("%s: added token %d is not valid UTF-8", path, i);
        if (bbpe_bool(path, a, "single_word", "added token"))
            fail("%s: added token \"%s\" sets single_word, which is not implemented", path, s);
        int id = bbpe_piece_id(m, s, len), want = id >= 0 ? id : m->n_tokens;
        if (seen[want]) fail("%s: added token \"%s\" appears twice", path, s);
        seen[want] = 1;
        int got = bbpe_json_id(path, bbpe_member(a, "id"), 1 << 30, "added token", s);
        if (got != want)
            fail("%s: added token \"%s\" has id %d, expected %d (its vocabulary id, else the next id after the vocabulary "
                 "and the added tokens before it)", path, s, got, want);
        if (id < 0) {
            memcpy(m->text_data + m->text_off[m->n_tokens], s, len + 1);
            m->text_off[m->n_tokens + 1] = m->text_off[m->n_tokens] + (uint32_t)len + 1;
            m->n_tokens++;
            bbpe_table_put(m->text_table, m->text_mask, s, len, want);
        }
        int pass = bbpe_bool(path, a, "normalized", "added token");
        BbpeAdded *t = &m->added[m->n_added];
        t->id = want;
        t->lstrip = (unsigned char)bbpe_bool(path, a, "lstrip", "added token");
        t->rstrip = (unsigned char)bbpe_bool(path, a, "rstrip", "added token");
        m->added_pass[m->n_added] = (unsigned char)pass;
        bbpe_table_put(m->added_table, m->added_mask, s, len, m->n_added);
        m->n_added++;
        if (bbpe_bool(path, a, "special", "added token")) m->special[want] = 1;
        m->added_first[pass][(unsigned char)s[0]] = 1;
        int k = 0;
        while (k < m->n_added_lens[pass] && lens[pass][k] > (int)len) k++;
        if (k == m->n_added_lens[pass] || lens[pass][k] != (int)len) {
            memmove(lens[pass] + k + 1, lens[pass] + k, (size_t)(m->n_added_lens[pass] - k) * sizeof(int));
            lens[pass][k] = (int)len;
            m->n_added_lens[pass]++;
        }
    }
    free(seen);
}

// The added token of the pass whose content is s[0..len), or -1.
static int bbpe_added_find(const BbpeModel *m, int pass, const char *s, size_t len) {
    uint32_t h = piece_hash(s, len);
    for (uint32_t slot = h & m->added_mask;; slot = (slot + 1) & m->added_mask) {
        int k = m->added_table[slot].id;
        if (k < 0) return -1;
        if (m->added_table[slot].hash != h || m->added_pass[k] != pass) continue;
        int id = m->added[k].id;
        if (m->text_off[id + 1] - m->text_off[id] - 1 == len && memcmp(m->text_data + m->text_off[id], s, len) == 0) return k;
    }
}

static void bbpe_free(BbpeModel *m) {
    if (!m) return;
    free(m->text_data);
    free(m->bytes_data);
    free(m->text_off);
    free(m->bytes_off);
    free(m->special);
    free(m->text_table);
    free(m->bytes_table);
    free(m->merges);
    free(m->added);
    free(m->added_table);
    free(m->added_pass);
    free(m->added_lens[0]);
    free(m->added_lens[1]);
    free(m);
}

static BbpeModel *bbpe_load(const char *path, const char *file, size_t size) {
    JsonValue root;
    json_parse(&root, file, size, path);
    if (root.type != JSON_OBJECT) fail("%s: expected a JSON object (a Hugging Face tokenizer.json)", path);
    const JsonValue *model = bbpe_member(&root, "model");
    if (!model || model->type != JSON_OBJECT) fail("%s: has no \"model\" object; expected a Hugging Face tokenizer.json", path);
    if (!bbpe_is_type(model, "BPE"))
        fail("%s: model type %s is not implemented; expected BPE", path, bbpe_type(model) ? bbpe_type(model) : "(none)");
    const JsonValue *norm = bbpe_member(&root, "normalizer");
    if (norm) fail("%s: the normalizer (%s) is not implemented; expected null", path, bbpe_type(norm) ? bbpe_type(norm) : "?");
    if (bbpe_member(&root, "truncation") || bbpe_member(&root, "padding"))
        fail("%s: truncation and padding are not implemented; expected null", path);
    bbpe_check_pretokenizer(path, bbpe_member(&root, "pre_tokenizer"));
    if (!bbpe_is_type(bbpe_member(&root, "decoder"), "ByteLevel")) fail("%s: the decoder is not ByteLevel, the one implemented", path);
    const JsonValue *dropout = bbpe_member(model, "dropout");
    if (dropout && !(dropout->type == JSON_NUMBER && dropout->number == 0)) fail("%s: model.dropout is not implemented; expected null", path);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const JsonValue *v = bbpe_member(model, affixes[i]);
        if (v && !(v->type == JSON_STRING && !v->string[0])) fail("%s: model.%s is not implemented; expected null", path, affixes[i]);
    }

    BbpeModel *m = (BbpeModel *)xcalloc(1, sizeof(BbpeModel));
    m->ignore_merges = bbpe_bool(path, model, "ignore_merges", "model");
    const JsonValue *vocab = bbpe_member(model, "vocab"), *added = bbpe_member(&root, "added_tokens");
    if (!vocab || vocab->type != JSON_OBJECT || vocab->count == 0) fail("%s: model.vocab is not a non-empty object", path);
    if (added && added->type != JSON_ARRAY) fail("%s: added_tokens is not an array", path);
    int n_added = added ? added->count : 0;
    size_t added_bytes = 0;   // room for the added tokens' texts
    for (int i = 0; i < n_added; i++) {
        const JsonValue *c = added->items[i].type == JSON_OBJECT ? bbpe_member(&added->items[i], "content") : NULL;
        if (c && c->type == JSON_STRING) added_bytes += strlen(c->string) + 1;
    }
    m->n_model = vocab->count;
    size_t max_tokens = (size_t)m->n_model + (size_t)n_added;

    // the vocabulary: ids 0 .. n - 1, each once
    const char **text = (const char **)xcalloc(max_tokens + 1, sizeof(char *));
    for (int i = 0; i < vocab->count; i++) {
        const char *s = vocab->keys[i];
        int id = bbpe_json_id(path, &vocab->items[i], m->n_model, "vocabulary token", s);
        if (text[id]) fail("%s: tokens \"%s\" and \"%s\" both have id %d", path, text[id], s, id);
        if (!bbpe_utf8_valid(s, strlen(s))) fail("%s: vocabulary token %d is not valid UTF-8", path, id);
        text[id] = s;
    }
    m->text_off = (uint32_t *)xmalloc((max_tokens + 1) * sizeof(uint32_t));
    m->text_off[0] = 0;
    for (int i = 0; i < m->n_model; i++) {
        size_t next = (size_t)m->text_off[i] + strlen(text[i]) + 1;
        if (next > 0xFFFFFFFFu) fail("%s: the vocabulary is too large", path);
        m->text_off[i + 1] = (uint32_t)next;
    }
    if ((size_t)m->text_off[m->n_model] + added_bytes > 0xFFFFFFFFu) fail("%s: the added tokens are too large", path);
    m->text_data = (char *)xmalloc(m->text_off[m->n_model] + added_bytes);
    for (int i = 0; i < m->n_model; i++) memcpy(m->text_data + m->text_off[i], text[i], m->text_off[i + 1] - m->text_off[i]);
    m->text_table = bbpe_table_new(max_tokens, &m->text_mask);
    m->n_tokens = m->n_model;
    for (int i = 0; i < m->n_model; i++) {
        size_t len = m->text_off[i + 1] - m->text_off[i] - 1;
        if (bbpe_piece_id(m, text[i], len) >= 0) fail("%s: token \"%s\" appears twice in the vocabulary", path, text[i]);
        bbpe_table_put(m->text_table, m->text_mask, text[i], len, i);
    }
    m->special = (unsigned char *)xcalloc(max_tokens + 1, 1);
    int *lens[2] = {(int *)xmalloc(((size_t)n_added + 1) * sizeof(int)), (int *)xmalloc(((size_t)n_added + 1) * sizeof(int))};
    m->added_lens[0] = lens[0];
    m->added_lens[1] = lens[1];
    bbpe_load_added(m, path, added, lens);

    // the bytes of every token, and the byte-level lookups
    int char_byte[0x144];
    for (int i = 0; i < 0x144; i++) char_byte[i] = -1;
    for (int b = 0; b < 256; b++) char_byte[bbpe_byte_char(b)] = b;
    m->bytes_off = (uint32_t *)xmalloc(((size_t)m->n_tokens + 1) * sizeof(uint32_t));
    m->bytes_data = (char *)xmalloc(m->text_off[m->n_tokens]);
    m->bytes_table = bbpe_table_new((size_t)m->n_model, &m->bytes_mask);
    m->bytes_off[0] = 0;
    for (int i = 0; i < m->n_tokens; i++) {
        const char *t = m->text_data + m->text_off[i];
        size_t len = m->text_off[i + 1] - m->text_off[i] - 1;
        int mapped;
        size_t n = bbpe_text_bytes(char_byte, t, len, m->bytes_data + m->bytes_off[i], &mapped);
        m->bytes_off[i + 1] = m->bytes_off[i] + (uint32_t)n;
        if (i < m->n_model && mapped && n > 0) bbpe_table_put(m->bytes_table, m->bytes_mask, m->bytes_data + m->bytes_off[i], n, i);
    }
    for (int b = 0; b < 256; b++) {
        char c[1] = {(char)b};
        m->byte_id[b] = bbpe_table_find(m->bytes_table, m->bytes_mask, m->bytes_data, m->bytes_off, c, 1);
        if (m->byte_id[b] < 0) fail("%s: the vocabulary lacks the token of byte 0x%02X; expected a byte-level BPE vocabulary", path, b);
    }
    for (int c = 0; c < 128; c++) m->ascii_class[c] = (unsigned char)bbpe_class_of((uint32_t)c);
    bbpe_load_merges(m, path, bbpe_member(model, "merges"));

    const JsonValue *unk = bbpe_member(model, "unk_token");
    m->unk_id = -1;
    if (unk) {
        if (unk->type != JSON_STRING) fail("%s: model.unk_token is not a string", path);
        m->unk_id = bbpe_piece_id(m, unk->string, strlen(unk->string));
        if (m->unk_id < 0) fail("%s: model.unk_token \"%s\" is not a token", path, unk->string);
    }
    m->eos_id = -1;
    m->bos_id = bbpe_template_bos(m, path, bbpe_member(&root, "post_processor"));
    bbpe_load_config(m, path);
    free(text);
    json_free_value(&root);
    return m;
}

// ----------------------------------------------------------------------------------------------------------
// encoding

typedef struct {
    int id, len;      // the token and its length in bytes; len 0 once merged into the symbol on its left
    int prev, next;   // neighbouring live symbols, -1 at the ends
} BbpeSymbol;

typedef struct {
    int rank, pos, id;   // a merge of the symbol at pos with the next one, into token id
} BbpeCandidate;

typedef struct {   // a piece seen before in the same text: its ids are copied from where they were written
    size_t text, ids;            // offsets of the piece in the text and of its ids in the output
    uint32_t hash, len, n_ids;   // len 0: an empty entry
} BbpeCacheEntry;

typedef struct {
    const BbpeModel *m;
    const char *text;
    int *ids;
    size_t n, cap;
    BbpeSymbol *sym;
    BbpeCandidate *heap;
    size_t sym_cap;
    BbpeCacheEntry *cache;   // NULL for short texts
    size_t cache_mask;
} BbpeEncoder;

static void bbpe_emit(BbpeEncoder *e, int id) {
    if (e->n == e->cap) {
        e->cap = 2 * e->cap + 16;
        e->ids = (int *)xrealloc(e->ids, e->cap * sizeof(int));
    }
    e->ids[e->n++] = id;
}

// Whether heap entry a comes out before b: the lowest rank first, then the leftmost.
static int bbpe_before(const BbpeCandidate *a, const BbpeCandidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void bbpe_sift_down(BbpeCandidate *h, int n, int i) {
    BbpeCandidate x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bbpe_before(&h[c + 1], &h[c])) c++;
        if (!bbpe_before(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

// Adds the merge of symbols left and right (adjacent) where there is one.
static void bbpe_push(BbpeEncoder *e, int *n_heap, int left, int right) {
    if (left < 0 || right < 0) return;
    const BbpeMerge *mg = bbpe_merge_find(e->m, e->sym[left].id, e->sym[right].id);
    if (!mg) return;
    BbpeCandidate c = {mg->rank, left, mg->id};
    int i = (*n_heap)++;
    while (i > 0 && bbpe_before(&c, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = c;
}

// The ids of one piece of the pattern, s[0..len) (len > 0), appended to the output.
static void bbpe_merge_piece(BbpeEncoder *e, const char *s, size_t len) {
    const BbpeModel *m = e->m;
    if (len == 1) { bbpe_emit(e, m->byte_id[(unsigned char)s[0]]); return; }
    if (m->ignore_merges) {
        int id = bbpe_table_find(m->bytes_table, m->bytes_mask, m->bytes_data, m->bytes_off, s, len);
        if (id >= 0) { bbpe_emit(e, id); return; }
    }
    if (len > 0x7FFFFFFF / 3) fail("cannot encode a piece of %zu bytes: at most 700 MB", len);
    if (len > e->sym_cap) {
        e->sym_cap = len > 2 * e->sym_cap ? len : 2 * e->sym_cap;
        free(e->sym);
        free(e->heap);
        e->sym = (BbpeSymbol *)xmalloc(e->sym_cap * sizeof(BbpeSymbol));
        e->heap = (BbpeCandidate *)xmalloc(3 * e->sym_cap * sizeof(BbpeCandidate));   // n - 1, then 2 per merge
    }
    int n = (int)len, n_heap = 0;
    BbpeSymbol *sym = e->sym;
    for (int i = 0; i < n; i++) {
        sym[i].id = m->byte_id[(unsigned char)s[i]];
        sym[i].len = 1;
        sym[i].prev = i - 1;
        sym[i].next = i + 1 < n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < n; i++) {
        const BbpeMerge *mg = bbpe_merge_find(m, sym[i].id, sym[i + 1].id);
        if (mg) { BbpeCandidate c = {mg->rank, i, mg->id}; e->heap[n_heap++] = c; }
    }
    for (int i = n_heap / 2 - 1; i >= 0; i--) bbpe_sift_down(e->heap, n_heap, i);
    while (n_heap > 0) {
        BbpeCandidate top = e->heap[0];
        e->heap[0] = e->heap[--n_heap];
        bbpe_sift_down(e->heap, n_heap, 0);
        BbpeSymbol *l = &sym[top.pos];
        if (l->len == 0 || l->next < 0) continue;
        BbpeSymbol *r = &sym[l->next];
        const BbpeMerge *mg = bbpe_merge_find(m, l->id, r->id);
        if (!mg || mg->id != top.id) continue;   // this pair has changed since the entry was made
        l->id = top.id;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = top.pos;
        bbpe_push(e, &n_heap, l->prev, top.pos);
        bbpe_push(e, &n_heap, top.pos, l->next);
    }
    for (int i = 0; i >= 0; i = sym[i].next) bbpe_emit(e, sym[i].id);
}

// The ids of text[a, b), a part with no added token: cut by the pattern, each piece merged (or copied from
// where the same piece was merged before in this text).
static void bbpe_encode_part(BbpeEncoder *e, size_t a, size_t b) {
    const unsigned char *s = (const unsigned char *)e->text;
    for (size_t i = a; i < b;) {
        size_t len = bbpe_pretoken_len(e->m, s, i, b);
        BbpeCacheEntry *c = NULL;
        if (e->cache) {
            uint32_t h = piece_hash(e->text + i, len);
            c = &e->cache[h & e->cache_mask];
            if (c->len == len && c->hash == h && memcmp(e->text + c->text, e->text + i, len) == 0) {
                for (uint32_t k = 0; k < c->n_ids; k++) bbpe_emit(e, e->ids[c->ids + k]);
                i += len;
                continue;
            }
            c->text = i;
            c->ids = e->n;
            c->hash = h;
            c->len = len <= 0xFFFFFFFFu ? (uint32_t)len : 0;
        }
        bbpe_merge_piece(e, e->text + i, len);
        if (c) c->n_ids = (uint32_t)(e->n - c->ids);
        i += len;
    }
}

// The end of the run of white space that starts at s[i] (the lstrip and rstrip of added tokens).
static size_t bbpe_space_end(const BbpeModel *m, const unsigned char *s, size_t i, size_t n) {
    return bbpe_run_end(m, s, i, n, UNICODE_SPACE);
}

// The start of the run of white space that ends at s[i], not before s[lo].
static size_t bbpe_space_start(const BbpeModel *m, const unsigned char *s, size_t lo, size_t i) {
    while (i > lo) {
        size_t k = i - 1;
        while (k > lo && (s[k] & 0xC0) == 0x80) k--;
        int len;
        if (bbpe_class(m, bbpe_char(s + k, &len)) != UNICODE_SPACE) break;
        i = k;
    }
    return i;
}

// The ids of text[a, b): the added tokens of the pass are found leftmost-longest, the parts between go to
// the next pass, then to the pattern.
static void bbpe_encode_added(BbpeEncoder *e, size_t a, size_t b, int pass) {
    const BbpeModel *m = e->m;
    if (pass == 2) { bbpe_encode_part(e, a, b); return; }
    if (m->n_added_lens[pass] == 0) { bbpe_encode_added(e, a, b, pass + 1); return; }
    const unsigned char *s = (const unsigned char *)e->text;
    size_t done = a;   // the end of the last token with what it stripped
    for (size_t p = a; p < b; p++) {
        if (!m->added_first[pass][s[p]]) continue;
        int k = -1;
        size_t len = 0;
        for (int j = 0; j < m->n_added_lens[pass] && k < 0; j++) {
            len = (size_t)m->added_lens[pass][j];
            if (len <= b - p) k = bbpe_added_find(m, pass, e->text + p, len);
        }
        if (k < 0) continue;
        size_t start = p, stop = p + len;
        if (m->added[k].lstrip) start = bbpe_space_start(m, s, done, start);
        if (m->added[k].rstrip) stop = bbpe_space_end(m, s, stop, b);
        if (done < start) bbpe_encode_added(e, done, start, pass + 1);
        bbpe_emit(e, m->added[k].id);
        done = stop;
        p += len - 1;   // the search goes on after the token itself, as the library's
    }
    if (done < b) bbpe_encode_added(e, done, b, pass + 1);
}

static int *bbpe_encode(const BbpeModel *m, const char *text, size_t len, int add_bos, int add_eos, size_t *n_ids) {
    BbpeEncoder e;
    memset(&e, 0, sizeof(e));
    e.m = m;
    char *fixed = NULL;
    if (!bbpe_utf8_valid(text, len)) {
        fixed = (char *)xmalloc(3 * len + 1);
        len = bbpe_utf8_lossy(text, len, fixed);
        text = fixed;
    }
    e.text = text;
    e.cap = len / 3 + 16;
    e.ids = (int *)xmalloc(e.cap * sizeof(int));
    if (add_bos) bbpe_emit(&e, m->bos_id);
    if (len >= 4096) {   // long texts repeat their words: remember the pieces merged
        size_t entries = 256;
        while (entries < len / 16 && entries < (1u << 16)) entries *= 2;
        e.cache = (BbpeCacheEntry *)xcalloc(entries, sizeof(BbpeCacheEntry));
        e.cache_mask = entries - 1;
    }
    bbpe_encode_added(&e, 0, len, 0);
    if (add_eos) bbpe_emit(&e, m->eos_id);
    free(e.cache);
    free(e.sym);
    free(e.heap);
    free(fixed);
    *n_ids = e.n;
    return e.ids;
}

// ----------------------------------------------------------------------------------------------------------
// decoding

static char *bbpe_decode(const BbpeModel *m, const int *ids, size_t n, size_t *len) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->n_tokens) fail("cannot decode token id %d: out of range [0, %d)", ids[i], m->n_tokens);
        if (!m->special[ids[i]]) total += m->bytes_off[ids[i] + 1] - m->bytes_off[ids[i]];
    }
    char *bytes = (char *)xmalloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (m->special[ids[i]]) continue;
        uint32_t a = m->bytes_off[ids[i]], b = m->bytes_off[ids[i] + 1];
        memcpy(bytes + o, m->bytes_data + a, b - a);
        o += b - a;
    }
    if (bbpe_utf8_valid(bytes, o)) {
        bytes[o] = 0;
        if (len) *len = o;
        return bytes;
    }
    char *out = (char *)xmalloc(3 * o + 1);
    size_t k = bbpe_utf8_lossy(bytes, o, out);
    free(bytes);
    out[k] = 0;
    if (len) *len = k;
    return out;
}

#endif
