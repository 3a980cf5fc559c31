// Passkeys: turns the server's WebAuthn options (JSON) into a
// navigator.credentials call and posts the browser's answer back. The only
// script of the site; without it (or without WebAuthn) the passkey buttons
// stay hidden and the forms work as they are.
"use strict";

(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function fromBase64url(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 1) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: fromBase64url(c.id) });
    });
  }

  function creationOptions(json) {
    const o = json.publicKey;
    return Object.assign({}, o, {
      challenge: fromBase64url(o.challenge),
      user: Object.assign({}, o.user, { id: fromBase64url(o.user.id) }),
      excludeCredentials: withIds(o.excludeCredentials),
    });
  }

  function requestOptions(json) {
    const o = json.publicKey;
    return Object.assign({}, o, {
      challenge: fromBase64url(o.challenge),
      allowCredentials: withIds(o.allowCredentials),
    });
  }

  function attestation(credential) {
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: toBase64url(credential.response.attestationObject),
        clientDataJSON: toBase64url(credential.response.clientDataJSON),
      },
      extensions: credential.getClientExtensionResults(),
    };
  }

  function assertion(credential) {
    const r = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: toBase64url(r.authenticatorData),
        clientDataJSON: toBase64url(r.clientDataJSON),
        signature: toBase64url(r.signature),
        userHandle: r.userHandle ? toBase64url(r.userHandle) : null,
      },
      extensions: credential.getClientExtensionResults(),
    };
  }

  async function post(box, url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "X-CSRF-Token": box.dataset.csrf,
      },
      body: JSON.stringify(body),
    });
    let json = {};
    try {
      json = await response.json();
    } catch (e) {
      json = {};
    }
    if (json.redirect && (response.ok || response.status === 403)) {
      window.location.assign(json.redirect);
      return null;
    }
    if (!response.ok) {
      throw new Error(json.error || "The server refused the passkey (" + response.status + ").");
    }
    return { status: response.status, json: json };
  }

  async function signIn(box) {
    const body = box.hasAttribute("data-second-factor") ? { second_factor: true } : {};
    const options = await post(box, box.dataset.options, body);
    if (!options) {
      return;
    }
    const credential = await navigator.credentials.get({ publicKey: requestOptions(options.json) });
    // The sign-in form's "Keep me signed in", when the page has one.
    const remember = document.getElementById("remember");
    await post(box, box.dataset.finish, {
      credential: assertion(credential),
      next: box.dataset.next,
      remember: remember ? remember.checked : false,
    });
  }

  async function register(box) {
    const options = await post(box, box.dataset.options, {});
    if (!options) {
      return;
    }
    const credential = await navigator.credentials.create({ publicKey: creationOptions(options.json) });
    const name = box.querySelector("[data-passkey-name]");
    const added = await post(box, box.dataset.finish, {
      credential: attestation(credential),
      name: name ? name.value : "",
    });
    if (added) {
      window.location.assign(window.location.pathname);
    }
  }

  // What a failed ceremony says: the browser's own messages are not meant
  // for people.
  function message(e) {
    if (e && e.name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out.";
    }
    if (e && e.name === "InvalidStateError") {
      return "This device already holds a passkey for your account.";
    }
    if (e && e.name === "SecurityError") {
      return "Passkeys do not work at this address.";
    }
    return (e && e.message) || "The passkey did not work.";
  }

  function start(box) {
    const button = box.querySelector("button");
    const error = box.querySelector("[data-passkey-error]");
    const run = box.dataset.passkey === "register" ? register : signIn;
    box.hidden = false;
    button.addEventListener("click", async function () {
      button.disabled = true;
      error.textContent = "";
      try {
        await run(box);
      } catch (e) {
        error.textContent = message(e);
      } finally {
        button.disabled = false;
      }
    });
  }

  document.querySelectorAll("[data-passkey]").forEach(start);
})();
