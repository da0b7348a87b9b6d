// The Express side of tests/test_express_interop.py: express-session + connect-redis,
// configured from the environment, sharing sessions with the Django test app.
// With STORE=mongo, connect-mongo instead (tests/test_express_mongo_interop.py).
//
//   PORT, REDIS_URL, PREFIX (sess:), SESSION_SECRETS (comma-separated, first signs),
//   STORE ("redis" or "mongo"), MONGO_URL, MONGO_DB, MONGO_COLLECTION (sessions),
//   COOKIE_NAME (connect.sid), COOKIE_MAX_AGE_MS (empty: browser-session cookie),
//   RESAVE, ROLLING, SAVE_UNINITIALIZED ("true"/"false", default false)
//   BENCH_ROUTES=true adds the benchmark's cases (bench/main.py): /untouched/, /first/,
//   /read/, /write/, /login/ and /prime/?n=N; NO_SESSION=true leaves express-session out
//   altogether (Express's own ceiling: every route answers "ok").
'use strict';

const express = require('express');
const session = require('express-session');
const { RedisStore } = require('connect-redis');
const { MongoStore } = require('connect-mongo');
const { createClient } = require('redis');
const crypto = require('crypto');
const signature = require('cookie-signature');

const env = process.env;
const flag = (name) => (env[name] || 'false').toLowerCase() === 'true';
const maxAge = env.COOKIE_MAX_AGE_MS ? Number(env.COOKIE_MAX_AGE_MS) : null;

// The session store and what closes its connection.
async function openStore() {
  if (env.STORE === 'mongo') {
    const store = MongoStore.create({
      mongoUrl: env.MONGO_URL || 'mongodb://127.0.0.1:27017',
      dbName: env.MONGO_DB || undefined,
      collectionName: env.MONGO_COLLECTION || 'sessions',
    });
    await store.collectionP; // connected, TTL index created
    return { store, close: () => store.close() };
  }
  const client = createClient({ url: env.REDIS_URL || 'redis://127.0.0.1:7210/0' });
  client.on('error', (err) => console.error('redis error', err.message));
  await client.connect();
  const store = new RedisStore({ client, prefix: env.PREFIX || 'sess:' });
  return { store, close: () => client.quit() };
}

async function main() {
  const { store, close } = await openStore();

  const app = express();
  const name = env.COOKIE_NAME || 'connect.sid';
  const secrets = (env.SESSION_SECRETS || 'change-me').split(',');
  if (flag('NO_SESSION')) {
    app.get('/:case/', (req, res) => res.type('text').send('ok'));
  } else {
    app.use(
      session({
        name,
        secret: secrets,
        store,
        resave: flag('RESAVE'),
        rolling: flag('ROLLING'),
        saveUninitialized: flag('SAVE_UNINITIALIZED'),
        cookie: { maxAge },
      }),
    );
  }
  if (flag('BENCH_ROUTES')) benchRoutes(app, { name, secrets, store });

  // The visit counter.
  app.get('/', (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    res.json({ views: req.session.views });
  });

  // Reads nothing, changes nothing.
  app.get('/plain', (req, res) => res.type('text').send('plain'));

  // The whole session as express-session sees it (cookie object included).
  app.get('/read', (req, res) => res.json(req.session));

  app.get('/set/:key/:value', (req, res) => {
    req.session[req.params.key] = req.params.value;
    res.json({ [req.params.key]: req.params.value });
  });

  // Express login: a new id, then the user in the session.
  app.get('/login/:username', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = { username: req.params.username };
      req.session.save((err2) => (err2 ? next(err2) : res.json({ user: req.session.user })));
    });
  });

  // Who is signed in: Express's own user, or Django's (django.contrib.auth's key).
  app.get('/me', (req, res) => {
    const user = req.session.user || null;
    const djangoUserId = req.session._auth_user_id || null;
    res.status(user || djangoUserId ? 200 : 401).json({ user, django_user_id: djangoUserId });
  });

  app.get('/logout', (req, res, next) => {
    req.session.destroy((err) => {
      if (err) return next(err);
      res.clearCookie(env.COOKIE_NAME || 'connect.sid', { path: '/' });
      res.type('text').send('bye');
    });
  });

  const server = app.listen(Number(env.PORT || 3000), '127.0.0.1', () => {
    console.log(`listening on ${server.address().port}`);
  });
  const stop = () => server.close(() => close().finally(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// The benchmark's cases, the same as bench/views.py's on the Django side.
function benchRoutes(app, { name, secrets, store }) {
  const ok = (res) => res.type('text').send('ok');
  app.get('/untouched/', (req, res) => ok(res));
  app.get('/first/', (req, res) => {
    req.session.views = 1;
    ok(res);
  });
  app.get('/read/', (req, res) => {
    void req.session.views;
    ok(res);
  });
  app.get('/write/', (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    ok(res);
  });
  app.get('/login/', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = { username: 'bench' };
      ok(res);
    });
  });
  // N new sessions holding views=1, written straight to the store; one Cookie value a line.
  app.get('/prime/', async (req, res, next) => {
    try {
      const n = Math.max(1, Math.min(Number(req.query.n) || 1, 100000));
      const lines = [];
      for (let i = 0; i < n; i += 1) {
        const sid = crypto.randomBytes(24).toString('base64url');
        const cookie = { originalMaxAge: maxAge, expires: null, httpOnly: true, path: '/' };
        if (maxAge) cookie.expires = new Date(Date.now() + maxAge).toISOString();
        await new Promise((resolve, reject) => {
          store.set(sid, { cookie, views: 1 }, (err) => (err ? reject(err) : resolve()));
        });
        const signed = `s:${signature.sign(sid, secrets[0])}`;
        lines.push(`${name}=${encodeURIComponent(signed)}`);
      }
      res.type('text').send(`${lines.join('\n')}\n`);
    } catch (err) {
      next(err);
    }
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
