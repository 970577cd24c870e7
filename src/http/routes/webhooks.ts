import { z } from "@hono/zod-openapi";
import type { LedgerContext } from "../../ledger/core/context.js";
import type { Signer } from "../../signing/signer.js";
import { listWebhookDeliveries, retryWebhookDelivery } from "../../webhooks/deliveries.js";
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getWebhookEndpoint,
  listWebhookEndpoints,
  rotateWebhookSecret,
  updateWebhookEndpoint,
} from "../../webhooks/endpoints.js";
import type { SecretBox } from "../../webhooks/secret-box.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import { createRouter } from "../router.js";
import {
  createEndpointRoute,
  deleteEndpointRoute,
  getEndpointRoute,
  listDeliveriesRoute,
  listEndpointsRoute,
  retryDeliveryRoute,
  rotateSecretRoute,
  updateEndpointRoute,
} from "./webhooks.routes.js";

const DeliveryCursorSchema = z.strictObject({ before_event_id: z.string().regex(/^[0-9]{1,19}$/) });

/**
 * Outbound webhooks: endpoints, their secrets and their delivery logs (src/webhooks/, docs/design.md §25).
 * Admin scope throughout: an endpoint receives every account's events.
 */
export function webhookRoutes(deps: { ledger: LedgerContext; signer: Signer; secret_box: SecretBox }) {
  const { ledger, signer, secret_box } = deps;
  return createRouter()
    .openapi(createEndpointRoute, async (c) => {
      const body = c.req.valid("json");
      const { endpoint, secret } = await createWebhookEndpoint(ledger, secret_box, {
        url: body.url,
        events: body.events,
        description: body.description ?? null,
      });
      return c.json({ ...endpoint, secret }, 201);
    })
    .openapi(listEndpointsRoute, async (c) => c.json({ items: await listWebhookEndpoints(ledger.database) }, 200))
    .openapi(getEndpointRoute, async (c) => c.json(await getWebhookEndpoint(ledger.database, c.req.valid("param").id), 200))
    .openapi(updateEndpointRoute, async (c) => {
      const { id } = c.req.valid("param");
      return c.json(await updateWebhookEndpoint(ledger, id, c.req.valid("json")), 200);
    })
    .openapi(deleteEndpointRoute, async (c) => {
      await deleteWebhookEndpoint(ledger.database, c.req.valid("param").id);
      return c.body(null, 204);
    })
    .openapi(rotateSecretRoute, async (c) => {
      const { endpoint, secret } = await rotateWebhookSecret(ledger, secret_box, c.req.valid("param").id);
      return c.json({ ...endpoint, secret }, 200);
    })
    .openapi(listDeliveriesRoute, async (c) => {
      const { id } = c.req.valid("param");
      const { status, limit, cursor } = c.req.valid("query");
      // Bound to the endpoint and the status filter, so a cursor cannot continue another listing.
      const binding = ["webhook-deliveries", id, status ?? null];
      const before_event_id = cursor === undefined ? undefined : (await decodeCursor(signer, binding, cursor, DeliveryCursorSchema)).before_event_id;
      const page = await listWebhookDeliveries(ledger, id, { limit, status, before_event_id });
      const next_cursor =
        page.next_before_event_id === undefined ? null : await encodeCursor(signer, binding, { before_event_id: page.next_before_event_id });
      return c.json({ deliveries: page.deliveries, next_cursor }, 200);
    })
    .openapi(retryDeliveryRoute, async (c) => {
      const { id, delivery_id } = c.req.valid("param");
      return c.json(await retryWebhookDelivery(ledger, id, delivery_id), 200);
    });
}
