import { createRoute, z } from "@hono/zod-openapi";
import { WEBHOOK_DELIVERY_STATUSES } from "../../db/schema.js";
import { WEBHOOK_EVENT_TYPES_MAX, WEBHOOK_URL_LENGTH_MAX, subscribableEventTypes } from "../../webhooks/endpoints.js";
import { requireServiceScope } from "../auth.js";
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from "../problem.js";
import { BEARER_SECURITY, jsonBody } from "../route-parts.js";
import { DescriptionSchema, PageQuerySchema } from "../schemas.js";

/** The OpenAPI definitions of the webhook routes (src/webhooks/); the handlers are in webhooks.ts. */

const EVENT_TYPES = subscribableEventTypes() as [string, ...string[]];

const UrlSchema = z.string().min(1).max(WEBHOOK_URL_LENGTH_MAX).openapi({
  description: "An http or https URL. Delivery refuses loopback, private, link-local and metadata addresses (after DNS) unless the server sets WEBHOOK_ALLOW_PRIVATE_NETWORKS=true.",
  example: "https://billing.example.com/tally-webhooks",
});
const EventsSchema = z
  .array(z.enum(EVENT_TYPES))
  .min(1)
  .max(WEBHOOK_EVENT_TYPES_MAX)
  .openapi({ description: "The event types to deliver; `*` is every type the event stream carries, including future ones.", example: ["balance_depleted", "balance_restored"] });

export const WebhookEndpointSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    description: z.string().nullable(),
    events: z.array(z.string()),
    enabled: z.boolean(),
    disabled_reason: z.string().nullable().openapi({ description: "Why the endpoint is disabled: 24 h of failed attempts, or an administrator." }),
    disabled_at: z.iso.datetime().nullable(),
    failing_since: z.iso.datetime().nullable().openapi({ description: "The start of the current run of failed attempts; after 24 h of it the endpoint is disabled." }),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi("WebhookEndpoint");

const WebhookEndpointWithSecretSchema = WebhookEndpointSchema.extend({
  secret: z.string().openapi({
    description: "The signing secret (`whsec_…`, Standard Webhooks). Shown only in this answer; tally keeps it encrypted.",
    example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  }),
}).openapi("WebhookEndpointWithSecret");

const CreateEndpointSchema = z
  .strictObject({ url: UrlSchema, events: EventsSchema, description: DescriptionSchema.optional() })
  .openapi("WebhookEndpointRequest");

const UpdateEndpointSchema = z
  .strictObject({
    url: UrlSchema.optional(),
    events: EventsSchema.optional(),
    enabled: z.boolean().optional().openapi({ description: "`true` re-enables a disabled endpoint: its pending deliveries are due at once." }),
    description: DescriptionSchema.nullable().optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { message: "name at least one of url, events, enabled, description" })
  .openapi("WebhookEndpointUpdate");

const AttemptSchema = z
  .object({
    attempt: z.number().int(),
    started_at: z.iso.datetime(),
    finished_at: z.iso.datetime().nullable(),
    outcome: z.enum(["succeeded", "failed", "in_flight", "interrupted"]).openapi({
      description: "`interrupted`: the tally process making the attempt stopped before it could record the result.",
    }),
    response_status: z.number().int().nullable(),
    error: z.string().nullable(),
    response_excerpt: z.string().nullable().openapi({ description: "The first 256 characters of the answer's body." }),
    duration_ms: z.number().int().nullable(),
  })
  .openapi("WebhookAttempt");

export const WebhookDeliverySchema = z
  .object({
    id: z.uuid(),
    endpoint_id: z.uuid(),
    event_id: z.string().openapi({ description: "The event's id, sent as `webhook-id`." }),
    event_type: z.string(),
    status: z.enum(WEBHOOK_DELIVERY_STATUSES),
    attempts: z.number().int(),
    last_response_status: z.number().int().nullable(),
    last_error: z.string().nullable(),
    next_attempt_at: z.iso.datetime().nullable(),
    give_up_at: z.iso.datetime().openapi({ description: "No automatic attempt after this; the delivery then fails." }),
    created_at: z.iso.datetime(),
    finished_at: z.iso.datetime().nullable(),
    attempt_log: z.array(AttemptSchema).openapi({ description: "The latest 20 attempts, oldest first." }),
  })
  .openapi("WebhookDelivery");

export const EndpointIdParamsSchema = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });
const DeliveryParamsSchema = EndpointIdParamsSchema.extend({
  delivery_id: z.uuid().openapi({ param: { name: "delivery_id", in: "path" } }),
});
export const DeliveryListQuerySchema = PageQuerySchema.extend({
  status: z
    .enum(WEBHOOK_DELIVERY_STATUSES)
    .optional()
    .openapi({ param: { name: "status", in: "query" } }),
});

const endpointJson = { "application/json": { schema: WebhookEndpointSchema } };
const secretJson = { "application/json": { schema: WebhookEndpointWithSecretSchema } };
const common = { tags: ["webhooks"], security: BEARER_SECURITY, middleware: [requireServiceScope("admin")] };

export const createEndpointRoute = createRoute({
  ...common,
  method: "post",
  path: "/v1/webhook-endpoints",
  operationId: "createWebhookEndpoint",
  summary: "Register a webhook endpoint; the answer shows its signing secret, once",
  request: { body: jsonBody(CreateEndpointSchema) },
  responses: { 201: { description: "Created", content: secretJson }, ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "too_many_webhook_endpoints") },
});

export const listEndpointsRoute = createRoute({
  ...common,
  method: "get",
  path: "/v1/webhook-endpoints",
  operationId: "listWebhookEndpoints",
  summary: "Every webhook endpoint (at most 100 exist)",
  responses: {
    200: { description: "The endpoints", content: { "application/json": { schema: z.object({ items: z.array(WebhookEndpointSchema) }).openapi("WebhookEndpointList") } } },
    ...errorResponses(...AUTH_ERRORS),
  },
});

export const getEndpointRoute = createRoute({
  ...common,
  method: "get",
  path: "/v1/webhook-endpoints/{id}",
  operationId: "getWebhookEndpoint",
  summary: "One webhook endpoint",
  request: { params: EndpointIdParamsSchema },
  responses: { 200: { description: "The endpoint", content: endpointJson }, ...errorResponses("validation_failed", ...AUTH_ERRORS, "webhook_endpoint_not_found") },
});

export const updateEndpointRoute = createRoute({
  ...common,
  method: "patch",
  path: "/v1/webhook-endpoints/{id}",
  operationId: "updateWebhookEndpoint",
  summary: "Change the URL, the event types, the description, or enable or disable the endpoint",
  request: { params: EndpointIdParamsSchema, body: jsonBody(UpdateEndpointSchema) },
  responses: { 200: { description: "Changed", content: endpointJson }, ...errorResponses(...BODY_ERRORS, ...AUTH_ERRORS, "webhook_endpoint_not_found") },
});

export const deleteEndpointRoute = createRoute({
  ...common,
  method: "delete",
  path: "/v1/webhook-endpoints/{id}",
  operationId: "deleteWebhookEndpoint",
  summary: "Delete the endpoint and its delivery log",
  request: { params: EndpointIdParamsSchema },
  responses: { 204: { description: "Deleted" }, ...errorResponses("validation_failed", ...AUTH_ERRORS, "webhook_endpoint_not_found") },
});

export const rotateSecretRoute = createRoute({
  ...common,
  method: "post",
  path: "/v1/webhook-endpoints/{id}/rotate-secret",
  operationId: "rotateWebhookSecret",
  summary: "A new signing secret, shown once; the previous one keeps signing beside it for 24 h",
  request: { params: EndpointIdParamsSchema },
  responses: { 200: { description: "Rotated", content: secretJson }, ...errorResponses("validation_failed", ...AUTH_ERRORS, "webhook_endpoint_not_found") },
});

export const listDeliveriesRoute = createRoute({
  ...common,
  method: "get",
  path: "/v1/webhook-endpoints/{id}/deliveries",
  operationId: "listWebhookDeliveries",
  summary: "The endpoint's deliveries, newest event first, with their attempts",
  request: { params: EndpointIdParamsSchema, query: DeliveryListQuerySchema },
  responses: {
    200: {
      description: "One page; pass `next_cursor` back as `cursor` for the next",
      content: {
        "application/json": {
          schema: z.object({ deliveries: z.array(WebhookDeliverySchema), next_cursor: z.string().nullable() }).openapi("WebhookDeliveryPage"),
        },
      },
    },
    ...errorResponses("validation_failed", "invalid_cursor", ...AUTH_ERRORS, "webhook_endpoint_not_found"),
  },
});

export const retryDeliveryRoute = createRoute({
  ...common,
  method: "post",
  path: "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry",
  operationId: "retryWebhookDelivery",
  summary: "Attempt a delivery again now (a finished one gets one more attempt)",
  request: { params: DeliveryParamsSchema },
  responses: {
    200: { description: "Due now (unless an attempt is in flight, which the answer shows)", content: { "application/json": { schema: WebhookDeliverySchema } } },
    ...errorResponses("validation_failed", ...AUTH_ERRORS, "webhook_endpoint_not_found", "webhook_delivery_not_found"),
  },
});
