/*
 * GET /healthz: whether the worker can reach its database. nginx and load
 * balancers poll it, so it is never written to the request log.
 */

#include "http.h"


void
cg_health_handle(cg_server_t *srv, cg_http_req_t *req,
    const cg_request_info_t *info)
{
    if (cg_db_is_up(srv->db)) {
        cg_http_send_json(req, info->request_id, 200,
                          "{\"status\":\"ok\",\"database\":\"up\"}\n", -1);
        return;
    }

    cg_log_debug(info->request_id, "health check: database is down");
    cg_http_send_json(req, info->request_id, 503,
                      "{\"status\":\"degraded\",\"database\":\"down\"}\n", -1);
}
