// The harness the real-player tests drive: window.play(options) starts one player on the
// test content and resolves once frames were decrypted and shown, or with the player's
// error. Options come from tests/players/harness.py.
"use strict";

function waitForFrames(video, frames, fail) {
  return new Promise((resolve) => {
    const check = () => {
      const quality = video.getVideoPlaybackQuality();
      if (quality.totalVideoFrames >= frames && video.currentTime > 0) {
        resolve({ played: true, frames: quality.totalVideoFrames, currentTime: video.currentTime });
        return true;
      }
      return false;
    };
    video.addEventListener("timeupdate", check);
    fail.then((error) => resolve({ played: false, error, currentTime: video.currentTime }));
  });
}

function shakaError(error) {
  let data = "";
  try { data = JSON.stringify(error.data).slice(0, 400); } catch (e) { data = String(error.data); }
  return `shaka error ${error.code} ${data}`;
}

async function playShaka(video, options, fail, reject) {
  shaka.polyfill.installAll();
  const player = new shaka.Player();
  await player.attach(video);
  player.configure({
    drm: {
      servers: { "org.w3.clearkey": options.licenseUrl },
      retryParameters: { maxAttempts: options.licenseAttempts, baseDelay: 100, backoffFactor: 1 },
    },
  });
  const license = shaka.net.NetworkingEngine.RequestType.LICENSE;
  player.getNetworkingEngine().registerRequestFilter((type, request) => {
    if (type !== license) return;
    if (options.authorization) request.headers["Authorization"] = options.authorization;
    if (options.withCredentials) request.allowCrossSiteCredentials = true;
  });
  player.addEventListener("error", (event) => reject(shakaError(event.detail)));
  await player.load(options.manifest);
}

function playDashjs(video, options, fail, reject) {
  const player = dashjs.MediaPlayer().create();
  const server = { serverURL: options.licenseUrl };
  if (options.authorization) server.httpRequestHeaders = { Authorization: options.authorization };
  if (options.withCredentials !== null) server.withCredentials = options.withCredentials;
  player.setProtectionData({ "org.w3.clearkey": server });
  player.on(dashjs.MediaPlayer.events.ERROR, (event) => {
    const error = event.error || {};
    reject(`dash.js error ${error.code}: ${error.message}`);
  });
  player.initialize(video, options.manifest, true);
}

window.play = async function play(options) {
  if (options.cookie) document.cookie = options.cookie;
  const video = document.querySelector("video");
  let reject;
  const fail = new Promise((resolve) => { reject = resolve; });
  const deadline = setTimeout(() => reject(`no playback within ${options.timeoutMs} ms`), options.timeoutMs);
  const outcome = waitForFrames(video, options.frames, fail);
  try {
    if (options.player === "shaka") await playShaka(video, options, fail, reject);
    else playDashjs(video, options, fail, reject);
    video.play().catch(() => {});
  } catch (error) {
    reject(error && error.code ? shakaError(error) : String(error));
  }
  const result = await outcome;
  clearTimeout(deadline);
  return result;
};
