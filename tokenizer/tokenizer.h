/*
 * tokenizer.h: the tokenizer of `tokenize` and of both trainers' samples, in plain C, header-only, for two
 * formats: a SentencePiece `.model` file (the protobuf, parsed here, no protobuf library), encoded and decoded
 * exactly as the `sentencepiece` library does for LLaMA's BPE model, and a Hugging Face `tokenizer.json` of a
 * byte-level BPE model (Llama-3's), encoded and decoded exactly as the `tokenizers` library does
 * (tokenizer/bpe.h). tokenizer_load tells them apart by the file's content: a JSON object is a tokenizer.json,
 * anything else is read as a SentencePiece model. Compiles as C and as C++ (nvcc includes it).
 *
 * API (every error, such as a missing or corrupt model file, goes through fail(): one line, exit 1):
 *
 *   Tokenizer tok;
 *   void  tokenizer_load(Tokenizer *t, const char *path);      read a .model or a tokenizer.json file
 *   void  tokenizer_free(Tokenizer *t);
 *   t->vocab_size, t->bos_id, t->eos_id, t->unk_id             ids are -1 where the model has none
 *   int  *tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int add_bos, int add_eos,
 *                          size_t *n_ids);
 *         text (any bytes, UTF-8 expected) -> malloc'd token ids, *n_ids of them; free() them
 *   char *tokenizer_decode(const Tokenizer *t, const int *ids, size_t n, size_t *len);
 *         ids -> malloc'd NUL-terminated text, its length in *len (len may be NULL); free() it
 *   const char *tokenizer_piece(const Tokenizer *t, int id, size_t *len);   piece text of an id
 *   int   tokenizer_piece_id(const Tokenizer *t, const char *piece, size_t len);   id of a piece, or -1
 *
 * A loaded Tokenizer is read-only: encode and decode take a const pointer and keep their working memory
 * per call, so any number of threads may use one Tokenizer at once. For a SentencePiece model decode drops
 * the space that starts the first piece (the dummy prefix), so decode a whole sequence rather than token by
 * token. The rest of this comment is the SentencePiece side; bpe.h describes the other.
 *
 * What sentencepiece does, and so what this does:
 * - normalize: the LLaMA model's normalizer is the identity (models with a precompiled normalization map
 *   are refused). Each byte that does not start a valid UTF-8 character becomes U+FFFD. Spaces become
 *   U+2581 (escape_whitespaces), one U+2581 is put in front of non-empty text (add_dummy_prefix), and
 *   remove_extra_whitespaces drops leading, trailing and repeated spaces.
 * - BPE: the text is split into characters (user-defined pieces match whole, longest first), then the
 *   adjacent pair whose concatenation is the piece with the highest score is merged, ties to the leftmost,
 *   until no adjacent pair forms a piece. A priority queue over adjacent pairs keeps this O(n log n).
 *   Pieces of type UNUSED are split back into the two pieces they were last made from. Faster, same
 *   result: where no piece of the model spans a newline or the start of a word, BPE runs word by word,
 *   and a long text copies the ids of a word it has already encoded.
 * - a character that is not a piece becomes its UTF-8 bytes as <0xXX> pieces (byte_fallback), or unk
 *   (one unk for a run of such characters).
 * - decode: control pieces print nothing, unk prints the trainer's unk_surface (" \xE2\x81\x87 "), U+2581
 *   becomes a space, the U+2581 that starts the first piece of the text is dropped (the dummy prefix),
 *   runs of byte pieces are reassembled into UTF-8 and each byte that does not form a valid character
 *   prints as U+FFFD.
 */
#ifndef GRASS_TOKENIZER_H
#define GRASS_TOKENIZER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "tokenizer/bpe.h"

// SentencePiece piece types (ModelProto.SentencePiece.Type).
enum { PIECE_NORMAL = 1, PIECE_UNKNOWN = 2, PIECE_CONTROL = 3, PIECE_USER_DEFINED = 4, PIECE_UNUSED = 5,
       PIECE_BYTE = 6 };

typedef struct {   // a slot of the piece hash table
    uint32_t hash;
    int id;
} TokenizerSlot;

typedef struct {
    int vocab_size;
    int unk_id, bos_id, eos_id;   // -1 where the model has no such piece
    // normalizer and trainer settings that change encoding or decoding
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces, byte_fallback;
    char *unk_surface;            // what decode prints for the unk piece
    size_t unk_surface_len;
    // piece i is piece_data[piece_offset[i] .. piece_offset[i + 1] - 1], followed by a NUL
    char *piece_data;
    uint32_t *piece_offset;
    float *piece_score;
    unsigned char *piece_type;
    unsigned char *piece_byte;    // the byte of a <0xXX> piece
    int byte_piece[256];          // id of <0xXX>, unk_id where the model lacks it
    TokenizerSlot *table;         // open-addressing hash of piece text -> id (id -1: an empty slot)
    uint32_t table_mask;
    int max_piece_len;            // longest piece that a merge can produce, in bytes
    int max_user_len;             // longest user-defined piece, 0 when there are none
    int *unused_slot;             // per id: index among the UNUSED pieces, or -1 (NULL when none)
    int n_unused;
    // where no merge can cross, so that BPE runs on the pieces of text between such points (same result)
    int split_at_newline;         // after a newline
    int split_at_word;            // before a space symbol that follows another character
    BbpeModel *bpe;               // a tokenizer.json model; NULL for a SentencePiece one
} Tokenizer;

// ----------------------------------------------------------------------------------------------------------
// piece lookup

static int tokenizer_piece_id(const Tokenizer *t, const char *piece, size_t len) {
    if (t->bpe) return bbpe_piece_id(t->bpe, piece, len);
    uint32_t h = piece_hash(piece, len);
    for (uint32_t slot = h & t->table_mask;; slot = (slot + 1) & t->table_mask) {
        int id = t->table[slot].id;
        if (id < 0) return -1;
        if (t->table[slot].hash != h) continue;
        uint32_t off = t->piece_offset[id];
        if (t->piece_offset[id + 1] - off - 1 == len && memcmp(t->piece_data + off, piece, len) == 0) return id;
    }
}

static const char *tokenizer_piece(const Tokenizer *t, int id, size_t *len) {
    if (t->bpe) return bbpe_piece(t->bpe, id, len);
    if (id < 0 || id >= t->vocab_size) fail("token id %d is out of range [0, %d)", id, t->vocab_size);
    if (len) *len = t->piece_offset[id + 1] - t->piece_offset[id] - 1;
    return t->piece_data + t->piece_offset[id];
}

// Pieces that BPE merges can produce (sentencepiece keeps these apart from the reserved ones).
static int tokenizer_is_mergeable(int type) {
    return type == PIECE_NORMAL || type == PIECE_USER_DEFINED || type == PIECE_UNUSED;
}

// Length of the valid UTF-8 character at s (n bytes available), or 0 when s[0] does not start one.
// Overlong forms, surrogates and code points above U+10FFFF are invalid, as in sentencepiece.
static int utf8_char_len(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        unsigned cp = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        return ((s[1] & 0xC0) == 0x80 && cp >= 0x80) ? 2 : 0;
    }
    if (n >= 3 && (c & 0xF0) == 0xE0) {
        unsigned cp = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        int trail = (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80;
        return (trail && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000)) ? 3 : 0;
    }
    if (n >= 4 && (c & 0xF8) == 0xF0) {
        unsigned cp = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        int trail = (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80;
        return (trail && cp >= 0x10000 && cp <= 0x10FFFF) ? 4 : 0;
    }
    return 0;
}

// ----------------------------------------------------------------------------------------------------------
// loading: a minimal protobuf reader over the bytes of the .model file

typedef struct {
    const unsigned char *p, *end;
    const char *path;
} ProtoReader;

static uint64_t proto_varint(ProtoReader *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) fail("%s is not a SentencePiece model: truncated varint", r->path);
        unsigned char b = *r->p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return v;
    }
    fail("%s is not a SentencePiece model: malformed varint", r->path);
}

// Reads the next field key; returns 0 at the end of the message.
static int proto_next(ProtoReader *r, uint32_t *field, uint32_t *wire) {
    if (r->p >= r->end) return 0;
    uint64_t key = proto_varint(r);
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    if (*field == 0) fail("%s is not a SentencePiece model: field number 0", r->path);
    return 1;
}

// A length-delimited field (wire type 2): returns a reader over its bytes.
static ProtoReader proto_bytes(ProtoReader *r, uint32_t wire) {
    if (wire != 2) fail("%s is not a SentencePiece model: expected a length-delimited field", r->path);
    uint64_t len = proto_varint(r);
    if (len > (uint64_t)(r->end - r->p)) fail("%s is truncated or corrupt: a field runs past the end", r->path);
    ProtoReader sub;
    sub.p = r->p;
    sub.end = r->p + len;
    sub.path = r->path;
    r->p += len;
    return sub;
}

static uint64_t proto_uint(ProtoReader *r, uint32_t wire) {
    if (wire != 0) fail("%s is not a SentencePiece model: expected a varint field", r->path);
    return proto_varint(r);
}

static float proto_float(ProtoReader *r, uint32_t wire) {
    if (wire != 5 || r->end - r->p < 4) fail("%s is not a SentencePiece model: bad float field", r->path);
    uint32_t bits = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    float f;
    memcpy(&f, &bits, 4);
    r->p += 4;
    return f;
}

static void proto_skip(ProtoReader *r, uint32_t wire) {
    if (wire == 0) proto_varint(r);
    else if (wire == 2) proto_bytes(r, wire);
    else if (wire == 1 || wire == 5) {
        size_t n = wire == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) fail("%s is truncated or corrupt", r->path);
        r->p += n;
    } else fail("%s is not a SentencePiece model: unsupported wire type %u", r->path, wire);
}

static char *proto_strdup(ProtoReader s, size_t *len) {
    *len = (size_t)(s.end - s.p);
    char *out = (char *)xmalloc(*len + 1);
    memcpy(out, s.p, *len);
    out[*len] = 0;
    return out;
}

// Parses "<0xXX>" (upper-case hex, as sentencepiece writes it); -1 if the piece is not of that form.
static int tokenizer_parse_byte(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') v = v * 16 + (c - '0');
        else if (c >= 'A' && c <= 'F') v = v * 16 + (c - 'A' + 10);
        else return -1;
    }
    return v;
}

// Whether a tokenizer file's bytes are a JSON object, a Hugging Face tokenizer.json (else a SentencePiece model).
static int tokenizer_bytes_are_json(const unsigned char *buf, size_t size) {
    size_t first = 0;
    while (first < size && (buf[first] == ' ' || buf[first] == '\t' || buf[first] == '\n' || buf[first] == '\r')) first++;
    return first < size && buf[first] == '{';
}

static void tokenizer_load(Tokenizer *t, const char *path) {
    memset(t, 0, sizeof(*t));
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) fail("%s is not a file, not a SentencePiece model", path);
    size_t size;
    unsigned char *buf = (unsigned char *)file_read_all(path, &size);
    if (size == 0) fail("%s is empty, not a SentencePiece model", path);
    if (tokenizer_bytes_are_json(buf, size)) {
        t->bpe = bbpe_load(path, (const char *)buf, size);
        free(buf);
        t->vocab_size = t->bpe->n_tokens;
        t->bos_id = t->bpe->bos_id;
        t->eos_id = t->bpe->eos_id;
        t->unk_id = t->bpe->unk_id;
        return;
    }

    // settings, with the protobuf defaults of sentencepiece_model.proto
    int model_type = 1, treat_ws_as_suffix = 0;
    size_t charsmap_len = 0, denorm_charsmap_len = 0;
    t->add_dummy_prefix = t->remove_extra_whitespaces = t->escape_whitespaces = 1;
    t->unk_surface = xstrdup(" \xE2\x81\x87 ");
    t->unk_surface_len = strlen(t->unk_surface);
    char *bos_piece = xstrdup("<s>"), *eos_piece = xstrdup("</s>");
    size_t bos_len = 3, eos_len = 4;

    // first pass: count the pieces and their bytes; read the trainer and normalizer specs
    ProtoReader r;
    r.p = buf;
    r.end = buf + size;
    r.path = path;
    size_t n_pieces = 0, n_bytes = 0;
    uint32_t field, wire;
    while (proto_next(&r, &field, &wire)) {
        if (field == 1) {
            ProtoReader pr = proto_bytes(&r, wire);
            n_pieces++;
            while (proto_next(&pr, &field, &wire)) {
                if (field == 1) { ProtoReader s = proto_bytes(&pr, wire); n_bytes += (size_t)(s.end - s.p) + 1; }
                else proto_skip(&pr, wire);
            }
        } else if (field == 2) {   // TrainerSpec
            ProtoReader tr = proto_bytes(&r, wire);
            while (proto_next(&tr, &field, &wire)) {
                if (field == 3) model_type = (int)proto_uint(&tr, wire);
                else if (field == 24) treat_ws_as_suffix = (int)proto_uint(&tr, wire);
                else if (field == 35) t->byte_fallback = (int)proto_uint(&tr, wire);
                else if (field == 44) { free(t->unk_surface); t->unk_surface = proto_strdup(proto_bytes(&tr, wire), &t->unk_surface_len); }
                else if (field == 46) { free(bos_piece); bos_piece = proto_strdup(proto_bytes(&tr, wire), &bos_len); }
                else if (field == 47) { free(eos_piece); eos_piece = proto_strdup(proto_bytes(&tr, wire), &eos_len); }
                else proto_skip(&tr, wire);
            }
        } else if (field == 3 || field == 5) {   // NormalizerSpec, denormalizer NormalizerSpec
            ProtoReader nr = proto_bytes(&r, wire);
            int is_norm = field == 3;
            while (proto_next(&nr, &field, &wire)) {
                if (field == 2) {
                    ProtoReader s = proto_bytes(&nr, wire);
                    *(is_norm ? &charsmap_len : &denorm_charsmap_len) = (size_t)(s.end - s.p);
                } else if (is_norm && field == 3) t->add_dummy_prefix = (int)proto_uint(&nr, wire);
                else if (is_norm && field == 4) t->remove_extra_whitespaces = (int)proto_uint(&nr, wire);
                else if (is_norm && field == 5) t->escape_whitespaces = (int)proto_uint(&nr, wire);
                else proto_skip(&nr, wire);
            }
        } else proto_skip(&r, wire);
    }
    if (n_pieces == 0) fail("%s is not a SentencePiece model: it has no pieces", path);
    if (n_pieces > (1u << 30) || n_bytes > 0xFFFFFFFFu) fail("%s is corrupt: too many pieces", path);
    if (model_type != 2) fail("%s is not a BPE model (model_type %d); only SentencePiece BPE models are supported", path, model_type);
    if (charsmap_len || denorm_charsmap_len)
        fail("%s uses a precompiled normalization map; only the identity normalizer (as in LLaMA) is supported", path);
    if (treat_ws_as_suffix) fail("%s sets treat_whitespace_as_suffix, which is not supported", path);

    // second pass: the pieces
    t->vocab_size = (int)n_pieces;
    t->piece_data = (char *)xmalloc(n_bytes);
    t->piece_offset = (uint32_t *)xmalloc((n_pieces + 1) * sizeof(uint32_t));
    t->piece_score = (float *)xmalloc(n_pieces * sizeof(float));
    t->piece_type = (unsigned char *)xmalloc(n_pieces);
    t->piece_byte = (unsigned char *)xcalloc(n_pieces, 1);
    r.p = buf;
    size_t id = 0, off = 0;
    while (proto_next(&r, &field, &wire)) {
        if (field != 1) { proto_skip(&r, wire); continue; }
        ProtoReader pr = proto_bytes(&r, wire);
        int type = PIECE_NORMAL;
        float score = 0.0f;
        t->piece_offset[id] = (uint32_t)off;
        while (proto_next(&pr, &field, &wire)) {
            if (field == 1) {   // a repeated field: the last one counts, as in protobuf
                ProtoReader s = proto_bytes(&pr, wire);
                off = t->piece_offset[id];
                memcpy(t->piece_data + off, s.p, (size_t)(s.end - s.p));
                off += (size_t)(s.end - s.p);
            } else if (field == 2) score = proto_float(&pr, wire);
            else if (field == 3) type = (int)proto_uint(&pr, wire);
            else proto_skip(&pr, wire);
        }
        if (off == t->piece_offset[id]) fail("%s is corrupt: piece %zu is empty", path, id);
        if (type < PIECE_NORMAL || type > PIECE_BYTE) fail("%s is corrupt: piece %zu has unknown type %d", path, id, type);
        t->piece_data[off++] = 0;
        t->piece_score[id] = score;
        t->piece_type[id] = (unsigned char)type;
        id++;
    }
    t->piece_offset[n_pieces] = (uint32_t)off;
    free(buf);

    // hash table, special ids, byte pieces, and what the encoder needs to know about the vocabulary
    uint32_t cap = 2;
    while (cap < 4 * n_pieces) cap *= 2;
    t->table = (TokenizerSlot *)xmalloc(cap * sizeof(TokenizerSlot));
    for (uint32_t i = 0; i < cap; i++) t->table[i].id = -1;
    t->table_mask = cap - 1;
    t->unk_id = t->bos_id = t->eos_id = -1;
    t->split_at_newline = t->split_at_word = 1;
    const char *space = t->escape_whitespaces ? "\xE2\x96\x81" : " ";
    size_t space_len = strlen(space);
    for (int i = 0; i < 256; i++) t->byte_piece[i] = -1;
    for (int i = 0; i < t->vocab_size; i++) {
        size_t len;
        const char *s = tokenizer_piece(t, i, &len);
        if (tokenizer_piece_id(t, s, len) >= 0) fail("%s is corrupt: piece \"%s\" is defined twice", path, s);
        uint32_t h = piece_hash(s, len), slot = h & t->table_mask;
        while (t->table[slot].id >= 0) slot = (slot + 1) & t->table_mask;
        t->table[slot].hash = h;
        t->table[slot].id = i;
        int type = t->piece_type[i];
        if (type == PIECE_UNKNOWN) {
            if (t->unk_id >= 0) fail("%s is corrupt: it has more than one unknown piece", path);
            t->unk_id = i;
        } else if (type == PIECE_BYTE) {
            int b = tokenizer_parse_byte(s, len);
            if (b < 0) fail("%s is corrupt: byte piece \"%s\" is not of the form <0xXX>", path, s);
            if (!t->byte_fallback) fail("%s is corrupt: byte piece \"%s\" but byte_fallback is off", path, s);
            t->byte_piece[b] = i;
            t->piece_byte[i] = (unsigned char)b;
        } else if (tokenizer_is_mergeable(type)) {
            if ((int)len > t->max_piece_len) t->max_piece_len = (int)len;
            if (type == PIECE_USER_DEFINED && (int)len > t->max_user_len) t->max_user_len = (int)len;
            if (type == PIECE_UNUSED) t->n_unused++;
            if (len > 1 && memchr(s, '\n', len)) t->split_at_newline = 0;
            for (size_t k = 1; k + space_len <= len; k++)
                if (memcmp(s + k, space, space_len) == 0 && !(k >= space_len && memcmp(s + k - space_len, space, space_len) == 0))
                    t->split_at_word = 0;
        }
    }
    if (t->unk_id < 0) fail("%s is corrupt: it has no unknown piece", path);
    for (int i = 0; i < 256; i++) if (t->byte_piece[i] < 0) t->byte_piece[i] = t->unk_id;
    // sentencepiece finds BOS and EOS by their piece text and uses them only if they are control pieces
    t->bos_id = tokenizer_piece_id(t, bos_piece, bos_len);
    if (t->bos_id >= 0 && t->piece_type[t->bos_id] != PIECE_CONTROL) t->bos_id = -1;
    t->eos_id = tokenizer_piece_id(t, eos_piece, eos_len);
    if (t->eos_id >= 0 && t->piece_type[t->eos_id] != PIECE_CONTROL) t->eos_id = -1;
    free(bos_piece);
    free(eos_piece);
    if (t->n_unused) {
        // an UNUSED piece is split back by the last merge rule that produced it in the whole text, so the
        // text cannot be cut into parts that are encoded on their own
        t->split_at_newline = t->split_at_word = 0;
        t->unused_slot = (int *)xmalloc((size_t)t->vocab_size * sizeof(int));
        int k = 0;
        for (int i = 0; i < t->vocab_size; i++) t->unused_slot[i] = t->piece_type[i] == PIECE_UNUSED ? k++ : -1;
    }
}

static void tokenizer_free(Tokenizer *t) {
    bbpe_free(t->bpe);
    free(t->unk_surface);
    free(t->piece_data);
    free(t->piece_offset);
    free(t->piece_score);
    free(t->piece_type);
    free(t->piece_byte);
    free(t->table);
    free(t->unused_slot);
    memset(t, 0, sizeof(*t));
}

// ----------------------------------------------------------------------------------------------------------
// encoding

// The normalized text of text[0..len) into out (room for 3 * len + 3 bytes); returns its length.
static size_t tokenizer_normalize(const Tokenizer *t, const char *text, size_t len, char *out) {
    const char *space = t->escape_whitespaces ? "\xE2\x96\x81" : " ";
    size_t space_len = t->escape_whitespaces ? 3 : 1;
    size_t i = 0, o = 0;
    if (t->remove_extra_whitespaces) while (i < len && text[i] == ' ') i++;
    if (i == len) return 0;
    if (t->add_dummy_prefix) { memcpy(out, space, space_len); o = space_len; }
    int prev_space = t->remove_extra_whitespaces;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ') {
            if (!prev_space) { memcpy(out + o, space, space_len); o += space_len; }
            prev_space = t->remove_extra_whitespaces;
            i++;
            continue;
        }
        prev_space = 0;
        int n = c < 0x80 ? 1 : utf8_char_len(text + i, len - i);
        if (n == 0) {   // a byte that starts no valid character becomes U+FFFD
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, text + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        }
    }
    if (t->remove_extra_whitespaces)
        while (o >= space_len && memcmp(out + o - space_len, space, space_len) == 0) o -= space_len;
    return o;
}

// End of the part of the normalized text s[start..len) that starts at start and that no merge can cross.
static size_t tokenizer_segment_end(const Tokenizer *t, const char *s, size_t start, size_t len) {
    if (!t->split_at_newline && !t->split_at_word) return len;
    const char *space = t->escape_whitespaces ? "\xE2\x96\x81" : " ";
    size_t sl = t->escape_whitespaces ? 3 : 1;
    for (size_t i = start + 1; i < len; i++) {
        if (t->split_at_newline && s[i - 1] == '\n') return i;
        if (t->split_at_word && s[i] == space[0] && i + sl <= len && memcmp(s + i, space, sl) == 0 &&
            !(i >= sl && memcmp(s + i - sl, space, sl) == 0)) return i;
    }
    return len;
}

typedef struct {
    int start, len;   // bytes of the normalized text; len 0 once merged into the symbol on its left
    int prev, next;   // neighbouring live symbols, -1 at the ends
    int frozen;       // user-defined pieces never merge
} BpeSymbol;

typedef struct {
    float score;
    int left, right, len;   // len: the merged length, to notice when either symbol has changed since
} BpePair;

typedef struct {
    const Tokenizer *t;
    const char *text;
    BpeSymbol *sym;
    BpePair *heap;
    int n_heap;
    int *unused_split;   // per UNUSED piece: length of the left part of the last pair that produced it
    int prev_unk;        // the last symbol emitted was unknown
} BpeState;

// Whether heap entry a comes out before b: higher score first, then the leftmost pair.
static int bpe_before(const BpePair *a, const BpePair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void bpe_sift_down(BpePair *h, int n, int i) {
    BpePair x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bpe_before(&h[c + 1], &h[c])) c++;
        if (!bpe_before(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void bpe_push(BpeState *s, int left, int right, int heapify_later) {
    if (left < 0 || right < 0 || s->sym[left].frozen || s->sym[right].frozen) return;
    const Tokenizer *t = s->t;
    int len = s->sym[left].len + s->sym[right].len;
    if (len > t->max_piece_len) return;
    const char *piece = s->text + s->sym[left].start;
    int id = tokenizer_piece_id(t, piece, (size_t)len);
    if (id < 0 || !tokenizer_is_mergeable(t->piece_type[id])) return;
    if (t->piece_type[id] == PIECE_UNUSED) s->unused_split[t->unused_slot[id]] = s->sym[left].len;
    BpePair p;
    p.score = t->piece_score[id];
    p.left = left;
    p.right = right;
    p.len = len;
    int i = s->n_heap++;
    if (!heapify_later) {
        while (i > 0 && bpe_before(&p, &s->heap[(i - 1) / 2])) {
            s->heap[i] = s->heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
    }
    s->heap[i] = p;
}

// Appends the ids of one final symbol: an UNUSED piece splits back into its parts, a character that is
// no piece becomes byte pieces, or unk (one unk for a run of such characters).
static void bpe_emit(BpeState *s, const char *piece, int len, int *ids, size_t *n) {
    const Tokenizer *t = s->t;
    int id = tokenizer_piece_id(t, piece, (size_t)len);
    if (id >= 0 && t->piece_type[id] == PIECE_UNUSED && s->unused_split[t->unused_slot[id]] > 0) {
        int k = s->unused_split[t->unused_slot[id]];
        bpe_emit(s, piece, k, ids, n);
        bpe_emit(s, piece + k, len - k, ids, n);
        return;
    }
    if (id < 0) id = t->unk_id;
    int is_unk = t->piece_type[id] == PIECE_UNKNOWN;
    if (is_unk && t->byte_fallback) {
        for (int i = 0; i < len; i++) ids[(*n)++] = t->byte_piece[(unsigned char)piece[i]];
    } else if (!(is_unk && s->prev_unk)) {
        ids[(*n)++] = id;
    }
    s->prev_unk = is_unk;
}

// BPE over the normalized bytes text[0..len) (a whole line, or the whole text); appends the ids.
static void bpe_encode(BpeState *s, int len, int *ids, size_t *n) {
    const Tokenizer *t = s->t;
    const char *text = s->text;
    int n_sym = 0;
    for (int i = 0; i < len;) {
        BpeSymbol *y = &s->sym[n_sym];
        unsigned char c = (unsigned char)text[i];
        int clen = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (clen > len - i) clen = len - i;
        y->frozen = 0;
        for (int ul = t->max_user_len < len - i ? t->max_user_len : len - i; ul > 0; ul--) {
            int id = tokenizer_piece_id(t, text + i, (size_t)ul);
            if (id >= 0 && t->piece_type[id] == PIECE_USER_DEFINED) { clen = ul; y->frozen = 1; break; }
        }
        y->start = i;
        y->len = clen;
        y->prev = n_sym - 1;
        y->next = i + clen < len ? n_sym + 1 : -1;
        i += clen;
        n_sym++;
    }
    s->n_heap = 0;
    for (int i = 1; i < n_sym; i++) bpe_push(s, i - 1, i, 1);
    for (int i = s->n_heap / 2 - 1; i >= 0; i--) bpe_sift_down(s->heap, s->n_heap, i);
    BpeSymbol *sym = s->sym;
    while (s->n_heap > 0) {
        BpePair top = s->heap[0];
        s->heap[0] = s->heap[--s->n_heap];
        bpe_sift_down(s->heap, s->n_heap, 0);
        BpeSymbol *l = &sym[top.left], *r = &sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.len) continue;   // stale
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = top.left;
        r->len = 0;
        bpe_push(s, l->prev, top.left, 0);
        bpe_push(s, top.left, l->next, 0);
    }
    for (int i = 0; n_sym > 0 && i >= 0; i = sym[i].next) bpe_emit(s, text + sym[i].start, sym[i].len, ids, n);
}

// A word seen before in the same text: its ids are copied from where they were first written.
typedef struct {
    size_t text, ids;   // offsets of the word in the normalized text and of its ids in the output
    uint32_t hash, len, n_ids;   // len 0: an empty entry
} BpeCacheEntry;

static int *tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int add_bos, int add_eos, size_t *n_ids) {
    if (add_bos && t->bos_id < 0) fail("cannot add BOS: the tokenizer model has no BOS piece");
    if (add_eos && t->eos_id < 0) fail("cannot add EOS: the tokenizer model has no EOS piece");
    if (t->bpe) return bbpe_encode(t->bpe, text, len, add_bos, add_eos, n_ids);
    char *norm = (char *)xmalloc(3 * len + 3);
    size_t norm_len = tokenizer_normalize(t, text, len, norm);
    int *ids = (int *)xmalloc((norm_len + 2) * sizeof(int));   // at most one id per normalized byte
    size_t n = 0;
    if (add_bos) ids[n++] = t->bos_id;

    // BPE word by word where no piece spans words (same result, small queues); else all at once. With
    // byte fallback a word's ids do not depend on its neighbours, so long texts remember the words seen.
    BpeCacheEntry *cache = NULL;
    size_t cache_mask = 0;
    if (t->byte_fallback && (t->split_at_word || t->split_at_newline) && norm_len >= 4096) {
        size_t entries = 256;
        while (entries < norm_len / 16 && entries < (1u << 14)) entries *= 2;
        cache = (BpeCacheEntry *)xcalloc(entries, sizeof(BpeCacheEntry));
        cache_mask = entries - 1;
    }
    BpeState s;
    s.t = t;
    s.prev_unk = 0;
    s.unused_split = t->n_unused ? (int *)xcalloc((size_t)t->n_unused, sizeof(int)) : NULL;
    size_t cap = 0;
    s.sym = NULL;
    s.heap = NULL;
    for (size_t start = 0; start < norm_len;) {
        size_t end = tokenizer_segment_end(t, norm, start, norm_len);
        if (end - start > 0x7FFFFFFF / 3) fail("cannot encode a line of %zu bytes: at most 700 MB", end - start);
        BpeCacheEntry *e = NULL;
        if (cache) {
            uint32_t h = piece_hash(norm + start, end - start);
            e = &cache[h & cache_mask];
            if (e->len == end - start && e->hash == h && memcmp(norm + e->text, norm + start, e->len) == 0) {
                memcpy(ids + n, ids + e->ids, e->n_ids * sizeof(int));
                n += e->n_ids;
                start = end;
                continue;
            }
            e->text = start;
            e->ids = n;
            e->hash = h;
            e->len = (uint32_t)(end - start);
        }
        if (end - start > cap) {
            cap = end - start > 2 * cap ? end - start : 2 * cap;
            free(s.sym);
            free(s.heap);
            s.sym = (BpeSymbol *)xmalloc(cap * sizeof(BpeSymbol));
            s.heap = (BpePair *)xmalloc(3 * cap * sizeof(BpePair));   // n - 1 pairs, then 2 per merge
        }
        s.text = norm + start;
        bpe_encode(&s, (int)(end - start), ids, &n);
        if (e) e->n_ids = (uint32_t)(n - e->ids);
        start = end;
    }
    free(cache);
    free(s.sym);
    free(s.heap);
    free(s.unused_split);
    free(norm);
    if (add_eos) ids[n++] = t->eos_id;
    *n_ids = n;
    return ids;
}

// ----------------------------------------------------------------------------------------------------------
// decoding

// Appends the bytes of a run of byte pieces, each byte that starts no valid UTF-8 character as U+FFFD.
static size_t tokenizer_decode_bytes(const Tokenizer *t, const int *ids, size_t n, char *out, size_t o) {
    char *bytes = out + o + 2 * n;   // room: the output of n bytes is at most 3n
    for (size_t i = 0; i < n; i++) bytes[i] = (char)t->piece_byte[ids[i]];
    for (size_t i = 0; i < n;) {
        int clen = utf8_char_len(bytes + i, n - i);
        if (clen == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memmove(out + o, bytes + i, (size_t)clen);
            o += (size_t)clen;
            i += (size_t)clen;
        }
    }
    return o;
}

static char *tokenizer_decode(const Tokenizer *t, const int *ids, size_t n, size_t *len) {
    if (t->bpe) return bbpe_decode(t->bpe, ids, n, len);
    // bytes per id at most: a normal piece, the unk surface, or U+FFFD for a byte piece
    size_t per_id = t->unk_surface_len > 3 ? t->unk_surface_len : 3;
    if ((size_t)t->max_piece_len > per_id) per_id = (size_t)t->max_piece_len;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size) fail("cannot decode token id %d: out of range [0, %d)", ids[i], t->vocab_size);
    char *out = (char *)xmalloc(n * per_id + 1);
    size_t o = 0, byte_start = 0;
    int at_start = 1, prev_dropped_prefix = 0;   // the dummy prefix is dropped from the first piece only
    for (size_t i = 0; i < n; i++) {
        int type = t->piece_type[ids[i]];
        if (type == PIECE_BYTE) continue;
        o = tokenizer_decode_bytes(t, ids + byte_start, i - byte_start, out, o);
        byte_start = i + 1;
        if (prev_dropped_prefix || o > 0) at_start = 0;
        prev_dropped_prefix = 0;
        if (type == PIECE_CONTROL) continue;
        if (type == PIECE_UNKNOWN) {
            memcpy(out + o, t->unk_surface, t->unk_surface_len);
            o += t->unk_surface_len;
            continue;
        }
        size_t plen;
        const char *p = tokenizer_piece(t, ids[i], &plen);
        if (at_start && (t->add_dummy_prefix || t->remove_extra_whitespaces) && plen >= 3 && memcmp(p, "\xE2\x96\x81", 3) == 0) {
            p += 3;
            plen -= 3;
            prev_dropped_prefix = !t->remove_extra_whitespaces;   // that option drops every leading space
        }
        for (size_t k = 0; k < plen;) {
            if (k + 3 <= plen && memcmp(p + k, "\xE2\x96\x81", 3) == 0) { out[o++] = ' '; k += 3; }
            else out[o++] = p[k++];
        }
    }
    o = tokenizer_decode_bytes(t, ids + byte_start, n - byte_start, out, o);
    out[o] = 0;
    if (len) *len = o;
    return out;
}

#endif
