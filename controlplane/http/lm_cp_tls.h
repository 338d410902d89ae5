/* The control plane's TLS certificate and key (lm_cp_tls.c): loaded at start, replaced on
 * SIGHUP, handed to every TLS handshake by a GnuTLS retrieve callback. Process-wide (the
 * callback has no user pointer): one control plane per process. */
#ifndef LM_CP_TLS_H
#define LM_CP_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>

#include "lm_error.h"

/* Reads the PEM chain in cert_file and the PEM key in key_file, checks that the key is the
 * certificate's, and makes them the pair later handshakes get. On failure (the message
 * names the file) the current pair stays. */
bool lm_cp_tls_load(const char *cert_file, const char *key_file, lm_error_t *err);

/* Whether key_file is private to its owner (mode 0600 or less); the message says chmod 600. */
bool lm_cp_tls_key_private(const char *key_file, lm_error_t *err);

/* The gnutls_certificate_retrieve_function2 for MHD_OPTION_HTTPS_CERT_CALLBACK. */
int lm_cp_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                       gnutls_pcert_st **pcert, unsigned int *pcert_length,
                       gnutls_privkey_t *privkey);

/* Frees every pair loaded; after the server stopped. */
void lm_cp_tls_cleanup(void);

#endif
