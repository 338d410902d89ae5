/* The control plane's TLS certificate and key, replaceable while it serves (SIGHUP).
 * libmicrohttpd asks for them at every handshake through a GnuTLS retrieve callback, which
 * hands out the current pair. A reload loads and checks the new pair completely before it
 * becomes current; a pair that was current is kept until lm_cp_tls_cleanup, since a
 * handshake begun before the reload may still use it (reloads are rare: a few KiB each).
 * GnuTLS gives the callback no user pointer, so the pair is process-wide: one control
 * plane per process. */
#include "lm_cp_tls.h"

#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "lm_cp.h"
#include "lm_encode.h"
#include "lm_fs.h"

#define MAX_CHAIN 8

typedef struct pair {
    gnutls_pcert_st chain[MAX_CHAIN];
    unsigned n;
    gnutls_privkey_t key;
    struct pair *older; /* the pairs that were current before, kept until cleanup */
} pair_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pair_t *current;

static void pair_free(pair_t *p)
{
    for (unsigned i = 0; i < p->n; i++)
        gnutls_pcert_deinit(&p->chain[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    free(p);
}

/* Whether the certificate's public key is the private key's. */
static bool key_matches(const pair_t *p)
{
    gnutls_pubkey_t pk = NULL;
    gnutls_datum_t a = {NULL, 0}, b = {NULL, 0};
    bool same = gnutls_pubkey_init(&pk) == 0 &&
                gnutls_pubkey_import_privkey(pk, p->key, 0, 0) == 0 &&
                gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &a) == 0 &&
                gnutls_pubkey_export2(p->chain[0].pubkey, GNUTLS_X509_FMT_DER, &b) == 0 &&
                a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
    gnutls_free(a.data);
    gnutls_free(b.data);
    if (pk)
        gnutls_pubkey_deinit(pk);
    return same;
}

bool lm_cp_tls_key_private(const char *key_file, lm_error_t *err)
{
    int fd = open(key_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lm_error_set(err, LM_ERR_CONFIG, "tls.key_file %s: cannot open it", key_file);
    bool ok = lm_cp_private_file(fd, key_file, "TLS private key (tls.key_file)", err);
    close(fd);
    return ok;
}

/* Reads and checks a certificate chain and its key into a new pair. */
static pair_t *pair_load(const char *cert_file, const char *key_file, lm_error_t *err)
{
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    pair_t *p = calloc(1, sizeof *p);
    bool ok = p != NULL;
    if (!ok)
        lm_error_set(err, LM_ERR_INTERNAL, "out of memory");
    ok = ok && lm_cp_tls_key_private(key_file, err) &&
         lm_fs_read_file(cert_file, 1u << 20, &cert, &cert_len, err) &&
         lm_fs_read_file(key_file, 1u << 20, &key, &key_len, err);
    if (ok) {
        gnutls_datum_t d = {(unsigned char *)cert, (unsigned)cert_len};
        p->n = MAX_CHAIN;
        int rc = gnutls_pcert_list_import_x509_raw(p->chain, &p->n, &d, GNUTLS_X509_FMT_PEM, 0);
        if (rc < 0 || p->n == 0) {
            p->n = 0;
            ok = lm_error_set(err, LM_ERR_CONFIG, "tls.cert_file %s: not a PEM certificate: %s",
                              cert_file, gnutls_strerror(rc));
        }
    }
    if (ok) {
        gnutls_datum_t d = {(unsigned char *)key, (unsigned)key_len};
        int rc = gnutls_privkey_init(&p->key);
        if (rc == 0)
            rc = gnutls_privkey_import_x509_raw(p->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (rc < 0)
            ok = lm_error_set(err, LM_ERR_CONFIG,
                              "tls.key_file %s: not an unencrypted PEM private key: %s", key_file,
                              gnutls_strerror(rc));
    }
    if (ok && !key_matches(p))
        ok = lm_error_set(err, LM_ERR_CONFIG, "tls.key_file %s is not the key of tls.cert_file %s",
                          key_file, cert_file);
    free(cert);
    if (key) {
        lm_wipe(key, key_len);
        free(key);
    }
    if (!ok && p) {
        pair_free(p);
        p = NULL;
    }
    return p;
}

bool lm_cp_tls_load(const char *cert_file, const char *key_file, lm_error_t *err)
{
    pair_t *p = pair_load(cert_file, key_file, err);
    if (!p)
        return false;
    pthread_mutex_lock(&mu);
    p->older = current;
    current = p;
    pthread_mutex_unlock(&mu);
    return true;
}

int lm_cp_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                       gnutls_pcert_st **pcert, unsigned int *pcert_length,
                       gnutls_privkey_t *privkey)
{
    (void)session, (void)req_ca_rdn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    pthread_mutex_lock(&mu);
    pair_t *p = current;
    pthread_mutex_unlock(&mu);
    if (!p)
        return -1;
    *pcert = p->chain;
    *pcert_length = p->n;
    *privkey = p->key;
    return 0;
}

void lm_cp_tls_cleanup(void)
{
    pthread_mutex_lock(&mu);
    pair_t *p = current;
    current = NULL;
    pthread_mutex_unlock(&mu);
    while (p) {
        pair_t *older = p->older;
        pair_free(p);
        p = older;
    }
}
