// A front end on another origin using Gatehouse's JSON API: sign in, show
// /api/me, refresh the session when it says 401, sign out. No build step, no
// framework. The session lives in Gatehouse's HttpOnly cookies; this script
// never sees a token, it only sends the cookies along (credentials: 'include').
'use strict';

const DEFAULT_API = 'http://127.0.0.1:8080';

const $ = (id) => document.getElementById(id);
const status = $('status');

// The Gatehouse address: ?api=…, else the default; changed with the form.
let api = baseUrl(new URLSearchParams(location.search).get('api') || DEFAULT_API);

function baseUrl(value) {
  return value.trim().replace(/\/+$/, '');
}

function say(message) {
  status.textContent = message;
}

// One API call. POSTs carry a JSON body and `Content-Type: application/json`:
// Gatehouse refuses any other state-changing call (415).
async function call(method, path, body) {
  const options = { method, credentials: 'include', headers: { Accept: 'application/json' } };
  if (method === 'POST') {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(api + path, options);
  } catch {
    // A network failure, or a CORS refusal: the browser does not say which.
    throw new Error(
      `Gatehouse does not answer at ${api}, or does not allow this page's origin ` +
        `(${location.origin}): is it running, with CORS_ORIGINS=${location.origin}?`,
    );
  }
  let data = null;
  if ((response.headers.get('Content-Type') || '').startsWith('application/json')) {
    data = await response.json();
  }
  return { status: response.status, data, response };
}

function errorText(result) {
  let text = result.data?.error || `Gatehouse answered ${result.status}.`;
  const retryAfter = result.response.headers.get('Retry-After');
  if (result.status === 429 && retryAfter) {
    text += ` Try again in ${retryAfter} seconds.`;
  }
  return text;
}

// GET /api/me; on 401, POST /api/refresh and ask once more.
async function fetchMe() {
  let me = await call('GET', '/api/me');
  if (me.status === 401) {
    const refreshed = await call('POST', '/api/refresh');
    if (refreshed.status === 200) {
      me = await call('GET', '/api/me');
    }
  }
  return me;
}

function show(user, focus) {
  $('signed-in').hidden = !user;
  $('signed-out').hidden = Boolean(user);
  if (user) {
    $('user-name').textContent = user.name;
    $('user-email').textContent = user.email;
  }
  if (focus) {
    $(user ? 'account-heading' : 'sign-in-heading').focus();
  }
}

async function loadMe(focus) {
  say('Asking Gatehouse who is signed in…');
  try {
    const me = await fetchMe();
    if (me.status === 200) {
      show(me.data, focus);
      say(`Signed in as ${me.data.name}.`);
    } else if (me.status === 401) {
      show(null, focus);
      say('Not signed in.');
    } else {
      say(errorText(me));
    }
  } catch (e) {
    show(null, false);
    say(e.message);
  }
}

$('sign-in').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  say('Signing in…');
  try {
    const result = await call('POST', '/api/login', {
      email: form.email.value,
      password: form.password.value,
      remember: form.remember.checked,
    });
    if (result.status !== 200) {
      say(errorText(result));
      form.password.select();
      return;
    }
    form.reset();
    await loadMe(true);
  } catch (e) {
    say(e.message);
  }
});

$('sign-out').addEventListener('click', async () => {
  say('Signing out…');
  try {
    const result = await call('POST', '/api/logout');
    if (result.status !== 204) {
      say(errorText(result));
      return;
    }
    show(null, true);
    say('Signed out.');
  } catch (e) {
    say(e.message);
  }
});

$('reload').addEventListener('click', () => loadMe(false));

$('api-form').addEventListener('submit', (event) => {
  event.preventDefault();
  api = baseUrl($('api').value);
  const url = new URL(location.href);
  url.searchParams.set('api', api);
  history.replaceState(null, '', url);
  loadMe(false);
});

$('api').value = api;
loadMe(false);
