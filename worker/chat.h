#ifndef CG_CHAT_H
#define CG_CHAT_H

#include "http.h"

/* The two shapes of a chat: the OpenAI API and the chat page's simple form. */
typedef enum {
    CG_CHAT_COMPLETIONS = 0,   /* POST /v1/chat/completions */
    CG_CHAT_FORM               /* POST /chat */
} cg_chat_kind_t;

/*
 * Handles a chat request: validates it, calls the provider and responds.
 * Every outcome, error or not, is written to the request log when the
 * response is sent. The handler counts itself in srv->in_flight until then.
 */
void cg_chat_handle(cg_server_t *srv, struct evhttp_request *req,
    const cg_request_info_t *info, cg_chat_kind_t kind);

#endif
