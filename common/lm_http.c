/* lm_http: see lm_http.h. */
#include "lm_http.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>

#include "lm_encode.h"
#include "lm_log.h"
#include "lm_time.h"

#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_TOTAL_MS 60000
#define DEFAULT_BACKOFF_BASE_MS 200
#define DEFAULT_BACKOFF_MAX_MS 30000
#define DEFAULT_MAX_BYTES (4u << 20)

typedef struct {
    char *data;
    size_t len, cap, max;
    bool too_large;
} body_t;

bool lm_http_global_init(lm_error_t *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return lm_error_set(err, LM_ERR_INTERNAL, "cannot initialise libcurl");
    return true;
}

void lm_http_global_cleanup(void)
{
    curl_global_cleanup();
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
        char *nd = realloc(b->data, ncap);
        if (!nd)
            return 0;
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

/* Turns a failed transfer into an operator-facing error. */
static void describe(const lm_http_opts_t *o, const char *url, CURLcode rc, const char *detail,
                     const body_t *b, lm_error_t *err)
{
    const char *d = detail[0] ? detail : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        lm_error_set(
            err, LM_ERR_TLS, "%s: TLS failed (%s): %s", url, d,
            rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ? "the server's key does not match the pinned key"
            : rc == CURLE_SSL_CERTPROBLEM        ? "check the client certificate and key files"
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

static CURL *make_handle(const lm_http_opts_t *o, const char *method, const char *url,
                         struct curl_slist *hdrs, const char *body, size_t body_len, body_t *b,
                         char *errbuf)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
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

    memset(resp, 0, sizeof *resp);
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
        CURL *h = make_handle(&o, method, url, hdrs, body, body_len, &b, errbuf);
        if (!h) {
            lm_error_set(err, LM_ERR_INTERNAL, "cannot create an HTTP handle");
            goto out;
        }
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        if (rc == CURLE_FILESIZE_EXCEEDED) {
            rc = CURLE_WRITE_ERROR;
            b.too_large = true;
        }
        resp->attempts = attempt + 1;
        free(resp->body);
        resp->body = NULL;
        resp->body_len = 0;
        resp->status = status;
        if (rc == CURLE_OK) {
            resp->body = b.data;
            resp->body_len = b.len;
            b.data = NULL;
        }
        if (attempt < o.max_retries && transient(rc, status)) {
            int64_t wait = lm_time_backoff_ms(attempt, o.backoff_base_ms, o.backoff_max_ms);
            lm_log_debug(NULL, "%s %s: attempt %u failed (%s), retrying in %lld ms", method, url,
                         attempt + 1, rc == CURLE_OK ? "server busy" : curl_easy_strerror(rc),
                         (long long)wait);
            free(b.data);
            if (!lm_time_sleep_ms(wait, o.cancel)) {
                lm_error_set(err, LM_ERR_CANCELLED, "%s: request cancelled", url);
                goto out;
            }
            continue;
        }
        if (rc != CURLE_OK) {
            describe(&o, url, rc, errbuf, &b, err);
            if (resp->attempts > 1)
                lm_error_prefix(err, "after %u attempts", resp->attempts);
            free(b.data);
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
