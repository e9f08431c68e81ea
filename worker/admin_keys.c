#include "admin.h"


/* NOTE: no keys endpoints yet; this table is filled as they are built. */
const cg_admin_route_t  cg_admin_keys_routes[] = {
    { 0, NULL, CG_ROLE_ADMIN, NULL }
};
