/* lm_http: see lm_http.h. */
#include "lm_http.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lm_encode.h"
#include "lm_log.h"
#include "lm_time.h"

#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_TOTAL_MS 60000
#define DEFAULT_BACKOFF_BASE_MS 200
#define DEFAULT_BACKOFF_MAX_MS 30000
#define DEFAULT_MAX_BYTES (4u << 20)
#define MAX_ANCHORS 64 /* certificates read from a CA file */

/* The trust anchors of one request: SHA-256 of the certificates the verified chain must
 * contain one of (the pin alone, or every certificate of ca_file). The verify callback
 * finds it through the SSL_CTX's ex_data and records what it decided. */
typedef struct {
    unsigned char digest[MAX_ANCHORS][32];
    size_t n;
    bool pinned;  /* n == 1 and it is the caller's pin */
    bool checked; /* a chain was accepted by the callback */
    bool refused; /* a chain verified but contains no anchor */
} anchors_t;

static pthread_once_t anchor_once = PTHREAD_ONCE_INIT;
static int anchor_idx = -1;

typedef struct {
    char *data;
    size_t len, cap, max;
    bool too_large;
} body_t;

static void anchor_index_init(void)
{
    anchor_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

bool lm_http_global_init(lm_error_t *err)
{
    pthread_once(&anchor_once, anchor_index_init);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return lm_error_set(err, LM_ERR_INTERNAL, "cannot initialise libcurl");
    return true;
}

void lm_http_global_cleanup(void)
{
    curl_global_cleanup();
}

/* Bodies may carry secrets (a poll answer carries passwords): wiped before freed. */
static void body_free(body_t *b)
{
    if (b->data)
        lm_wipe(b->data, b->cap);
    free(b->data);
    b->data = NULL;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_t *b = userdata;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->too_large = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        /* not realloc: an answer may carry passwords; the old block is wiped */
        char *nd = malloc(ncap);
        if (!nd)
            return 0;
        if (b->data) {
            memcpy(nd, b->data, b->len);
            lm_wipe(b->data, b->cap);
            free(b->data);
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const lm_http_opts_t *o = clientp;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return (o->cancel && *o->cancel) ? 1 : 0;
}

static bool transient(CURLcode rc, long status)
{
    switch (rc) {
    case CURLE_OK: return status == 429 || status == 502 || status == 503 || status == 504;
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return true;
    default: return false;
    }
}

/* Methods that may be sent twice with the effect of once (RFC 9110 9.2.2). */
static bool idempotent(const char *method)
{
    return strcmp(method, "POST") != 0 && strcmp(method, "PATCH") != 0;
}

static bool sha256_der(X509 *x, unsigned char md[32])
{
    unsigned len = 0;
    return X509_digest(x, EVP_sha256(), md, &len) == 1 && len == 32;
}

/* OpenSSL's verify callback, installed by on_ssl_ctx when a CA file is given. OpenSSL has
 * verified the chain up to a trust anchor by then (preverify_ok); at the last call (the
 * server's own certificate, depth 0) the chain must also contain one of the anchors, else
 * the handshake fails before any request is written. */
static int on_verify(int preverify_ok, X509_STORE_CTX *xs)
{
    if (!preverify_ok)
        return 0;
    if (X509_STORE_CTX_get_error_depth(xs) != 0)
        return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    anchors_t *a = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), anchor_idx) : NULL;
    if (!a)
        return 0;
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(xs);
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        unsigned char md[32];
        if (!sha256_der(sk_X509_value(chain, i), md))
            continue;
        for (size_t k = 0; k < a->n; k++)
            if (memcmp(md, a->digest[k], 32) == 0) {
                a->checked = true;
                return 1;
            }
    }
    a->refused = true;
    X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_UNTRUSTED);
    return 0;
}

/* libcurl hands over the SSL_CTX before the handshake: TLS 1.2 at least (also set through
 * CURLOPT_SSLVERSION), and with a CA file the anchor check above. */
static CURLcode on_ssl_ctx(CURL *h, void *sslctx, void *userptr)
{
    SSL_CTX *ctx = sslctx;
    (void)h;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
        return CURLE_SSL_CONNECT_ERROR;
    if (userptr) {
        if (anchor_idx < 0 || !SSL_CTX_set_ex_data(ctx, anchor_idx, userptr))
            return CURLE_SSL_CONNECT_ERROR;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, on_verify);
    }
    return CURLE_OK;
}

static bool pin_decode(const char *hex, unsigned char out[32])
{
    if (strlen(hex) != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        unsigned v = 0;
        for (size_t k = 0; k < 2; k++) {
            char c = hex[2 * i + k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v |= (unsigned)(c - 'A' + 10);
            else
                return false;
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

/* Reads the anchors of a request: every certificate of ca_file, or with a pin only the
 * pinned one, which ca_file must hold (a CA file changed since linking is refused here,
 * before connecting). */
static bool anchors_load(const char *ca_file, const char *pin, anchors_t *a, lm_error_t *err)
{
    unsigned char want[32];
    memset(a, 0, sizeof *a);
    if (pin && !pin_decode(pin, want))
        return lm_error_set(err, LM_ERR_INVALID, "the CA pin is not a SHA-256 in hex");
    FILE *f = fopen(ca_file, "r");
    if (!f)
        return lm_error_set(err, LM_ERR_CONFIG, "%s: cannot open the CA file", ca_file);
    bool found = false;
    X509 *x;
    while (a->n < MAX_ANCHORS && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        unsigned char md[32];
        if (sha256_der(x, md)) {
            if (pin && memcmp(md, want, 32) == 0)
                found = true;
            memcpy(a->digest[a->n++], md, 32);
        }
        X509_free(x);
    }
    ERR_clear_error(); /* the end of the file is an error on OpenSSL's queue */
    fclose(f);
    if (a->n == 0)
        return lm_error_set(err, LM_ERR_CONFIG, "%s: no PEM certificate in the CA file", ca_file);
    if (pin && !found)
        return lm_error_set(err, LM_ERR_TLS,
                            "%s does not hold the pinned CA (SHA-256 %.12s...): the CA file "
                            "changed since this agent was linked; restore the control plane's CA "
                            "file or link again",
                            ca_file, pin);
    if (pin) {
        memcpy(a->digest[0], want, 32);
        a->n = 1;
        a->pinned = true;
    }
    return true;
}

bool lm_http_detail_is_disconnect(const char *detail)
{
    static const char *const needles[] = {
        "reset by peer", "connection reset",   "ssl_error_syscall", "unexpected eof",
        "broken pipe",   "connection refused", "send failure",      "recv failure"};
    char low[512];
    size_t n = 0;
    for (; detail && detail[n] && n + 1 < sizeof low; n++)
        low[n] = (char)tolower((unsigned char)detail[n]);
    low[n] = 0;
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (strstr(low, needles[i]))
            return true;
    return false;
}

/* Turns a failed transfer into an operator-facing error. */
static void describe(const lm_http_opts_t *o, const char *url, CURLcode rc, const char *detail,
                     const body_t *b, const anchors_t *a, lm_error_t *err)
{
    const char *d = detail[0] ? detail : curl_easy_strerror(rc);
    if (a && a->refused) {
        lm_error_set(err, LM_ERR_TLS,
                     "%s: TLS refused: the server's certificate does not chain to %s: this is not "
                     "the server it should be (or its CA changed); nothing was sent",
                     url, a->pinned ? "the pinned CA" : "a CA of the CA file");
        return;
    }
    /* a connection the server (or something between) reset or closed during the TLS
     * handshake is no TLS problem (found by the chaos soak): say what happened */
    if (rc == CURLE_SSL_CONNECT_ERROR && lm_http_detail_is_disconnect(d)) {
        lm_error_set(err, LM_ERR_NET,
                     "%s: the connection was reset or closed during the TLS handshake (%s): the "
                     "server stopped or restarted, or something between closed it; it is tried "
                     "again",
                     url, d);
        return;
    }
    switch (rc) {
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        lm_error_set(err, LM_ERR_NET,
                     "%s: the connection was reset or closed by the server (%s): the server "
                     "stopped or restarted, or something between closed it",
                     url, d);
        return;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        lm_error_set(
            err, LM_ERR_TLS, "%s: TLS failed (%s): %s", url, d,
            rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ? "the server's key does not match the pinned key"
            : rc == CURLE_SSL_CERTPROBLEM        ? "check the client certificate and key files"
            : rc == CURLE_SSL_CONNECT_ERROR
                ? "the handshake failed: the server must speak TLS 1.2 or newer, with a "
                  "certificate from the CA file (only that file is trusted)"
            : o->ca_file
                ? "check that the CA file holds the CA that signed the server's certificate"
                : "the server's certificate is not trusted: give the CA file that signed it");
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
        lm_error_set(err, LM_ERR_NET, "%s: cannot resolve the host name: check the URL", url);
        return;
    case CURLE_COULDNT_CONNECT:
        lm_error_set(err, LM_ERR_NET,
                     "%s: cannot connect (%s): check the address and that the server runs", url, d);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        lm_error_set(err, LM_ERR_TIMEOUT, "%s: timed out (%s)", url, d);
        return;
    case CURLE_ABORTED_BY_CALLBACK:
        lm_error_set(err, LM_ERR_CANCELLED, "%s: request cancelled", url);
        return;
    case CURLE_WRITE_ERROR:
        if (b->too_large) {
            lm_error_set(err, LM_ERR_TOO_LARGE,
                         "%s: response larger than the limit of %zu bytes; refused", url, b->max);
            return;
        }
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        lm_error_set(err, LM_ERR_INVALID, "%s: not a valid http(s) URL", url);
        return;
    default: break;
    }
    lm_error_set(err, LM_ERR_NET, "%s: request failed: %s", url, d);
}

/* The TLS settings of a handle; false when libcurl refuses one (then nothing is sent). */
static bool set_tls(CURL *h, const lm_http_opts_t *o, anchors_t *a)
{
    bool ok = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK;
    if (ok && o->ca_file) /* the file, and not also the CA path libcurl was built with */
        ok = curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_CAPATH, NULL) == CURLE_OK;
    if (ok)
        ok = curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, o->ca_file ? (void *)a : NULL) == CURLE_OK;
    return ok;
}

static CURL *make_handle(const lm_http_opts_t *o, const char *method, const char *url,
                         struct curl_slist *hdrs, const char *body, size_t body_len, body_t *b,
                         anchors_t *a, char *errbuf)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, o->ca_pin ? "https" : "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (!set_tls(h, o, a)) {
        curl_easy_cleanup(h);
        return NULL;
    }
    if (o->client_cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, o->client_cert_file);
    if (o->client_key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, o->client_key_file);
    if (o->pinned_pubkey)
        curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, o->pinned_pubkey);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_MS));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     (long)(o->total_timeout_ms ? o->total_timeout_ms : DEFAULT_TOTAL_MS));
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)b->max);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)o);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "livemig/" LM_VERSION);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (hdrs)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    return h;
}

bool lm_http_request(const lm_http_opts_t *opts, const char *method, const char *url,
                     const char *const *headers, const char *body, size_t body_len,
                     lm_http_response_t *resp, lm_error_t *err)
{
    struct curl_slist *hdrs = NULL;
    bool ok = false;
    unsigned attempt = 0;
    lm_http_opts_t o = *opts;
    anchors_t anchors;

    memset(resp, 0, sizeof *resp);
    pthread_once(&anchor_once, anchor_index_init);
    if (o.ca_pin && !o.ca_file)
        return lm_error_set(err, LM_ERR_CONFIG, "%s: a CA pin needs the CA file", url);
    if (o.ca_pin && strncasecmp(url, "https://", 8) != 0)
        return lm_error_set(err, LM_ERR_INVALID,
                            "%s: a pinned server is reached over https only: check the URL", url);
    if (o.ca_file && !anchors_load(o.ca_file, o.ca_pin, &anchors, err))
        return false;
    if (!o.backoff_base_ms)
        o.backoff_base_ms = DEFAULT_BACKOFF_BASE_MS;
    if (!o.backoff_max_ms)
        o.backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
    if (!o.max_response_bytes)
        o.max_response_bytes = DEFAULT_MAX_BYTES;
    for (size_t i = 0; headers && headers[i]; i++) {
        struct curl_slist *n = curl_slist_append(hdrs, headers[i]);
        if (!n) {
            lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
            goto out;
        }
        hdrs = n;
    }
    for (;; attempt++) {
        char errbuf[CURL_ERROR_SIZE] = "";
        body_t b = {.max = o.max_response_bytes};
        anchors.checked = anchors.refused = false;
        CURL *h = make_handle(&o, method, url, hdrs, body, body_len, &b, &anchors, errbuf);
        if (!h) {
            lm_error_set(err, LM_ERR_INTERNAL,
                         "cannot create an HTTP handle with the TLS settings livemig needs");
            goto out;
        }
        CURLcode rc = curl_easy_perform(h);
        char *scheme = NULL;
        curl_easy_getinfo(h, CURLINFO_SCHEME, &scheme);
        bool tls = scheme && strcasecmp(scheme, "https") == 0;
        long status = 0, sent = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
        curl_easy_cleanup(h);
        if (rc == CURLE_FILESIZE_EXCEEDED) {
            rc = CURLE_WRITE_ERROR;
            b.too_large = true;
        }
        if (rc == CURLE_OK && tls && o.ca_file && !anchors.checked) {
            /* the anchor check did not run: never trust such an answer */
            body_free(&b);
            lm_error_set(err, LM_ERR_TLS,
                         "%s: the server's certificate chain was not checked "
                         "against the CA file; refused",
                         url);
            goto out;
        }
        lm_http_response_cleanup(resp);
        resp->attempts = attempt + 1;
        resp->status = status;
        if (rc == CURLE_OK) {
            resp->body = b.data;
            resp->body_len = b.len;
            b.data = NULL;
        }
        /* A POST or PATCH that reached the server may have been carried out: it is only
         * sent again when it never left (nothing sent) or the server said it did not take
         * it (429, 503); otherwise the error says so (a retried "create" would create
         * twice). */
        bool repeatable =
            idempotent(method) || sent == 0 || (rc == CURLE_OK && (status == 429 || status == 503));
        if (attempt < o.max_retries && transient(rc, status) && repeatable) {
            int64_t wait = lm_time_backoff_ms(attempt, o.backoff_base_ms, o.backoff_max_ms);
            lm_log_debug(NULL, "%s %s: attempt %u failed (%s), retrying in %lld ms", method, url,
                         attempt + 1, rc == CURLE_OK ? "server busy" : curl_easy_strerror(rc),
                         (long long)wait);
            body_free(&b);
            if (!lm_time_sleep_ms(wait, o.cancel)) {
                lm_error_set(err, LM_ERR_CANCELLED, "%s: request cancelled", url);
                goto out;
            }
            continue;
        }
        if (rc != CURLE_OK) {
            describe(&o, url, rc, errbuf, &b, o.ca_file ? &anchors : NULL, err);
            if (!repeatable && transient(rc, status)) {
                size_t n = strlen(err->message);
                snprintf(err->message + n, sizeof err->message - n,
                         " (the %s was sent and may have been carried out: look before sending "
                         "it again)",
                         method);
            }
            if (resp->attempts > 1)
                lm_error_prefix(err, "after %u attempts", resp->attempts);
            body_free(&b);
            goto out;
        }
        ok = true;
        break;
    }
out:
    curl_slist_free_all(hdrs);
    return ok;
}

void lm_http_response_cleanup(lm_http_response_t *resp)
{
    if (!resp)
        return;
    if (resp->body)
        lm_wipe(resp->body, resp->body_len);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

bool lm_http_ca_pin(const char *pem_file, char out[65], lm_error_t *err)
{
    FILE *f = fopen(pem_file, "r");
    if (!f)
        return lm_error_set(err, LM_ERR_CONFIG, "%s: cannot open the CA certificate", pem_file);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x)
        return lm_error_set(err, LM_ERR_CONFIG, "%s: not a PEM certificate", pem_file);
    unsigned char md[32];
    unsigned len = 0;
    bool ok = X509_digest(x, EVP_sha256(), md, &len) == 1 && len == 32;
    X509_free(x);
    if (!ok)
        return lm_error_set(err, LM_ERR_INTERNAL, "%s: cannot hash the certificate", pem_file);
    lm_hex_encode(md, 32, out);
    return true;
}
