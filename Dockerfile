# tally: the HTTP server as compiled JavaScript (`npm run build` → dist/), the same code `npm start` runs.

# Build stage: the full dependency set (TypeScript is a dev dependency) compiles src/ to dist/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
RUN chown node:node /app
USER node

# Dependencies first, so the layer is reused while only the source changes. Dev dependencies (tests, linters,
# drizzle-kit, TypeScript) are not needed to run or to migrate.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY --chown=node:node . .
COPY --from=build --chown=node:node /app/dist ./dist

EXPOSE 8080
# node itself as the main process (not npm, not a shell), so `docker stop` delivers SIGTERM to tally, which then
# drains: /ready answers 503, responses carry Connection: close, in-flight requests finish (up to
# SHUTDOWN_TIMEOUT_MS, 10 s by default) and it exits 0.
CMD ["node", "--enable-source-maps", "dist/main.js"]
