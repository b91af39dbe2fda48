# mailshim container image: multi-stage build, runs as a non-root user from dist/ with production
# dependencies only. Config and certificates are mounted at /etc/mailshim.
#   docker build -t mailshim .
#   docker run -v $PWD/config:/etc/mailshim -p 587:587 mailshim
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS run
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY config ./config
USER node
EXPOSE 587 465 9464
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:9464/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/main.js"]
CMD ["run", "--config", "/etc/mailshim/mailshim.yaml"]
