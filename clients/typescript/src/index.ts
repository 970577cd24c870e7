export { createTallyClient, TallyApiError, type Problem, type ProblemCode, type TallyClient, type TallyClientOptions } from "./client.js";
export { UsageReporter, UsageBufferFullError, UsageFlushError, type UsageReporterOptions, type UsageRow } from "./usage-reporter.js";
export type { components, operations, paths } from "./schema.js";
