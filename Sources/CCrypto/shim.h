#ifndef BUILDSET_CCRYPTO_SHIM_H
#define BUILDSET_CCRYPTO_SHIM_H

/* The low-level SHA-256 and SHA-512 contexts are plain structs that can be saved
   between chunks of an upload and restored by another process; the EVP interface
   hides its state. OpenSSL 3 marks them deprecated, not removed. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#endif
