
/*
 * Revoked JWT ids in the limiter's shared memory zone.  The worker pushes
 * "revoke <jti> <exp>" lines on logout, and every JWT the module verifies
 * is looked up here.  An entry is dropped NGX_HTTP_CHATGATE_REVOKE_GRACE
 * seconds after its exp, when no leeway accepts the token any more.  The
 * set is bounded: a full set evicts the entry that expires soonest.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_chatgate.h"


/* node.data is the length of jti */

typedef struct {
    ngx_rbtree_node_t             node;         /* by_jti, key: CRC32 */
    ngx_rbtree_node_t             exp_node;     /* by_exp, key: exp */
    u_char                        jti[1];
} ngx_http_chatgate_revoked_node_t;


static ngx_http_chatgate_revoked_node_t *ngx_http_chatgate_revoke_lookup(
    ngx_http_chatgate_revoked_sh_t *rv, uint32_t hash, ngx_str_t *jti);
static void ngx_http_chatgate_revoke_delete(ngx_slab_pool_t *shpool,
    ngx_http_chatgate_revoked_sh_t *rv, ngx_http_chatgate_revoked_node_t *rn);
static ngx_uint_t ngx_http_chatgate_revoke_expire(ngx_slab_pool_t *shpool,
    ngx_http_chatgate_revoked_sh_t *rv, time_t now);
static ngx_int_t ngx_http_chatgate_revoke_evict(ngx_slab_pool_t *shpool,
    ngx_http_chatgate_revoked_sh_t *rv);
static void ngx_http_chatgate_revoke_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


void
ngx_http_chatgate_revoke_init(ngx_http_chatgate_revoked_sh_t *rv,
    ngx_uint_t max)
{
    ngx_rbtree_init(&rv->by_jti, &rv->jti_sentinel,
                    ngx_http_chatgate_revoke_insert_value);
    ngx_rbtree_init(&rv->by_exp, &rv->exp_sentinel, ngx_rbtree_insert_value);

    rv->count = 0;
    rv->max = ngx_max(max, 8);
}


/*
 * Parses the fields of "revoke <jti> <exp>": a jti of 1 to 64 base64url
 * characters and an exp in seconds since the epoch.  On error, writes a
 * message into err->data, a buffer of NGX_HTTP_CHATGATE_ERR_LEN bytes.
 */

ngx_int_t
ngx_http_chatgate_revoke_parse(ngx_str_t *jti, ngx_str_t *exp,
    ngx_http_chatgate_revoke_t *rv, ngx_str_t *err)
{
    u_char      c;
    ngx_uint_t  i;

    if (jti->len == 0 || jti->len > NGX_HTTP_CHATGATE_MAX_JTI_LEN) {
        goto invalid_jti;
    }

    for (i = 0; i < jti->len; i++) {
        c = jti->data[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            goto invalid_jti;
        }
    }

    rv->jti = *jti;
    rv->exp = ngx_atotm(exp->data, exp->len);

    if (rv->exp <= 0) {
        err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                                "invalid exp \"%*s\", expected seconds "
                                "since the epoch", ngx_min(exp->len, 32),
                                exp->data)
                   - err->data;
        return NGX_ERROR;
    }

    return NGX_OK;

invalid_jti:

    err->len = ngx_snprintf(err->data, NGX_HTTP_CHATGATE_ERR_LEN,
                            "invalid jti \"%*s\", expected 1 to 64 "
                            "base64url characters",
                            ngx_min(jti->len, 64), jti->data)
               - err->data;

    return NGX_ERROR;
}


/*
 * Adds the pushed ids to the zone, or moves the exp of one already there
 * to the later of the two.  Entries are never removed by a push, only when
 * their token has expired.  Returns NGX_ERROR when the zone has no room.
 */

ngx_int_t
ngx_http_chatgate_revoke_add(ngx_shm_zone_t *shm_zone, ngx_array_t *revoked,
    ngx_log_t *log)
{
    size_t                             size;
    time_t                             now;
    uint32_t                           hash;
    ngx_int_t                          rc;
    ngx_uint_t                         i, evicted;
    ngx_slab_pool_t                   *shpool;
    ngx_http_chatgate_revoke_t        *add;
    ngx_http_chatgate_revoked_sh_t    *rv;
    ngx_http_chatgate_revoked_node_t  *rn;

    rv = ngx_http_chatgate_limit_revoked(shm_zone, &shpool);
    now = ngx_time();
    add = revoked->elts;
    evicted = 0;
    rc = NGX_OK;

    ngx_shmtx_lock(&shpool->mutex);

    ngx_http_chatgate_revoke_expire(shpool, rv, now);

    for (i = 0; i < revoked->nelts; i++) {
        hash = ngx_crc32_short(add[i].jti.data, add[i].jti.len);
        rn = ngx_http_chatgate_revoke_lookup(rv, hash, &add[i].jti);

        if (rn) {
            if ((time_t) rn->exp_node.key < add[i].exp) {
                ngx_rbtree_delete(&rv->by_exp, &rn->exp_node);
                rn->exp_node.key = add[i].exp;
                ngx_rbtree_insert(&rv->by_exp, &rn->exp_node);
            }

            continue;
        }

        if (add[i].exp + NGX_HTTP_CHATGATE_REVOKE_GRACE < now) {
            continue;
        }

        if (rv->count >= rv->max) {
            evicted += ngx_http_chatgate_revoke_evict(shpool, rv);
        }

        size = offsetof(ngx_http_chatgate_revoked_node_t, jti)
               + add[i].jti.len;

        /* NOTE: a full zone evicts only revoked ids here, not counters,
         * so the zone must leave room for rv->max ids */

        for ( ;; ) {
            rn = ngx_slab_alloc_locked(shpool, size);
            if (rn || ngx_http_chatgate_revoke_evict(shpool, rv) == 0) {
                break;
            }

            evicted++;
        }

        if (rn == NULL) {
            rc = NGX_ERROR;
            break;
        }

        rn->node.key = hash;
        rn->node.data = (u_char) add[i].jti.len;
        rn->exp_node.key = add[i].exp;
        ngx_memcpy(rn->jti, add[i].jti.data, add[i].jti.len);

        ngx_rbtree_insert(&rv->by_jti, &rn->node);
        ngx_rbtree_insert(&rv->by_exp, &rn->exp_node);
        rv->count++;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (evicted) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "chatgate revoked token list is full, evicted %ui ids "
                      "that expire soonest", evicted);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "chatgate zone \"%V\" has no room for a revoked token "
                      "id, increase its size", &shm_zone->shm.name);
    }

    return rc;
}


/* Returns NGX_DECLINED when jti is revoked, else NGX_OK. */

ngx_int_t
ngx_http_chatgate_revoke_check(ngx_shm_zone_t *shm_zone, ngx_str_t *jti)
{
    uint32_t                           hash;
    ngx_slab_pool_t                   *shpool;
    ngx_http_chatgate_revoked_sh_t    *rv;
    ngx_http_chatgate_revoked_node_t  *rn;

    if (jti->len == 0 || jti->len > NGX_HTTP_CHATGATE_MAX_JTI_LEN) {
        return NGX_OK;
    }

    rv = ngx_http_chatgate_limit_revoked(shm_zone, &shpool);
    hash = ngx_crc32_short(jti->data, jti->len);

    ngx_shmtx_lock(&shpool->mutex);
    rn = ngx_http_chatgate_revoke_lookup(rv, hash, jti);
    ngx_shmtx_unlock(&shpool->mutex);

    return rn ? NGX_DECLINED : NGX_OK;
}


static ngx_http_chatgate_revoked_node_t *
ngx_http_chatgate_revoke_lookup(ngx_http_chatgate_revoked_sh_t *rv,
    uint32_t hash, ngx_str_t *jti)
{
    ngx_int_t                          rc;
    ngx_rbtree_node_t                 *node, *sentinel;
    ngx_http_chatgate_revoked_node_t  *rn;

    node = rv->by_jti.root;
    sentinel = rv->by_jti.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        rn = (ngx_http_chatgate_revoked_node_t *) node;

        rc = ngx_memn2cmp(jti->data, rn->jti, jti->len, (size_t) node->data);

        if (rc == 0) {
            return rn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_chatgate_revoke_delete(ngx_slab_pool_t *shpool,
    ngx_http_chatgate_revoked_sh_t *rv, ngx_http_chatgate_revoked_node_t *rn)
{
    ngx_rbtree_delete(&rv->by_jti, &rn->node);
    ngx_rbtree_delete(&rv->by_exp, &rn->exp_node);
    ngx_slab_free_locked(shpool, rn);
    rv->count--;
}


/* Drops the ids whose tokens no verifier accepts any more. */

static ngx_uint_t
ngx_http_chatgate_revoke_expire(ngx_slab_pool_t *shpool,
    ngx_http_chatgate_revoked_sh_t *rv, time_t now)
{
    ngx_uint_t                         n;
    ngx_rbtree_node_t                 *min;
    ngx_http_chatgate_revoked_node_t  *rn;

    for (n = 0; rv->by_exp.root != rv->by_exp.sentinel; n++) {
        min = ngx_rbtree_min(rv->by_exp.root, rv->by_exp.sentinel);

        if ((time_t) min->key + NGX_HTTP_CHATGATE_REVOKE_GRACE >= now) {
            break;
        }

        rn = (ngx_http_chatgate_revoked_node_t *)
                 ((u_char *) min
                  - offsetof(ngx_http_chatgate_revoked_node_t, exp_node));

        ngx_http_chatgate_revoke_delete(shpool, rv, rn);
    }

    return n;
}


/* Evicts the id that expires soonest; returns 1, or 0 when none is left. */

static ngx_int_t
ngx_http_chatgate_revoke_evict(ngx_slab_pool_t *shpool,
    ngx_http_chatgate_revoked_sh_t *rv)
{
    ngx_rbtree_node_t                 *min;
    ngx_http_chatgate_revoked_node_t  *rn;

    if (rv->by_exp.root == rv->by_exp.sentinel) {
        return 0;
    }

    min = ngx_rbtree_min(rv->by_exp.root, rv->by_exp.sentinel);

    rn = (ngx_http_chatgate_revoked_node_t *)
             ((u_char *) min
              - offsetof(ngx_http_chatgate_revoked_node_t, exp_node));

    ngx_http_chatgate_revoke_delete(shpool, rv, rn);

    return 1;
}


static void
ngx_http_chatgate_revoke_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                 **p;
    ngx_http_chatgate_revoked_node_t   *rn, *rnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            rn = (ngx_http_chatgate_revoked_node_t *) node;
            rnt = (ngx_http_chatgate_revoked_node_t *) temp;

            p = (ngx_memn2cmp(rn->jti, rnt->jti, (size_t) node->data,
                              (size_t) temp->data)
                 < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
