# tally: the HTTP server, run from TypeScript source through tsx (a runtime dependency), as in `npm start`.
FROM node:20-slim

ENV NODE_ENV=production
WORKDIR /app
RUN chown node:node /app
USER node

# Dependencies first, so the layer is reused while only the source changes. Dev dependencies (tests, linters,
# drizzle-kit) are not needed to run or to migrate.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY --chown=node:node . .

EXPOSE 8080
# node itself as the main process (not npm), so `docker stop` delivers SIGTERM to tally, which then drains
# in-flight requests for up to 10 s.
CMD ["node", "--import", "tsx", "src/main.ts"]
