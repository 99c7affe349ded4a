// The playground: chat streamed with fetch + a reader (EventSource cannot POST), image jobs
// polled until done, speech played in an <audio>. Every request rides on the session cookie
// and carries the page's CSRF token in a header; no API key is ever in the page.
"use strict";
(function () {
  var root = document.getElementById("playground");
  if (!root) return;
  var csrf = root.getAttribute("data-csrf");

  function byId(id) { return document.getElementById(id); }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    });
  }

  // The API's error shape ({"error": {"message"}}) or the status line.
  function failure(response) {
    return response.json().then(function (body) {
      return (body && body.error && body.error.message) || body.message || response.statusText;
    }, function () { return response.status + " " + response.statusText; });
  }

  function showError(id, message) {
    var box = byId(id);
    box.textContent = message;
    box.hidden = !message;
  }

  function tokens(data) {
    var parts = [];
    if (data.prompt_tokens != null) parts.push(data.prompt_tokens + " prompt tokens");
    if (data.completion_tokens != null) parts.push(data.completion_tokens + " completion tokens");
    return parts.join(", ");
  }

  function costLine(data, extra) {
    if (!data.cost_display) return "Cost: see Usage";
    var text = "Cost: " + data.cost_display;
    if (extra) text += " · " + extra;
    return text;
  }

  // -- chat -----------------------------------------------------------------------------------
  var chatForm = byId("chat-form");
  if (chatForm) {
    var modelPick = byId("chat-model");
    var imageField = byId("chat-image-field");
    var imageInput = byId("chat-image");
    var answer = byId("chat-answer");
    var chatCost = byId("chat-cost");
    var send = byId("chat-send");

    var showVision = function () {
      var option = modelPick.options[modelPick.selectedIndex];
      var vision = option && option.getAttribute("data-vision") === "yes";
      imageField.hidden = !vision;
      if (!vision) imageInput.value = "";
    };
    modelPick.addEventListener("change", showVision);
    showVision();

    var readImage = function () {
      var file = imageInput.files && imageInput.files[0];
      if (!file || imageField.hidden) return Promise.resolve(null);
      return new Promise(function (resolve, reject) {
        var reader = new FileReader();
        reader.onload = function () { resolve(reader.result); };
        reader.onerror = function () { reject(new Error("could not read the image")); };
        reader.readAsDataURL(file);
      });
    };

    // One SSE event's data: text deltas grow the answer; the cost event ends the run.
    var onEvent = function (data) {
      if (data === "[DONE]") return;
      var event = JSON.parse(data);
      if (event.error) { showError("chat-error", event.error.message); return; }
      if (event.object === "playground.cost") {
        chatCost.textContent = costLine(event, tokens(event));
        chatCost.setAttribute("data-cost", event.cost || "");
        return;
      }
      (event.choices || []).forEach(function (choice) {
        if (choice.delta && choice.delta.content) answer.textContent += choice.delta.content;
      });
    };

    var readStream = function (response) {
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var pump = function () {
        return reader.read().then(function (step) {
          buffer += decoder.decode(step.value || new Uint8Array(), { stream: !step.done });
          var cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            var block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            block.split("\n").forEach(function (line) {
              if (line.indexOf("data: ") === 0) onEvent(line.slice(6));
            });
          }
          if (!step.done) return pump();
        });
      };
      return pump();
    };

    chatForm.addEventListener("submit", function (e) {
      e.preventDefault();
      answer.textContent = "";
      chatCost.textContent = "";
      chatCost.removeAttribute("data-cost");
      showError("chat-error", "");
      send.disabled = true;
      root.setAttribute("data-chat", "running");
      readImage().then(function (image) {
        var body = { model: modelPick.value, system: byId("chat-system").value,
                     message: byId("chat-message").value };
        if (image) body.image = image;
        return post("/playground/api/chat", body);
      }).then(function (response) {
        if (!response.ok) return failure(response).then(function (m) { showError("chat-error", m); });
        return readStream(response);
      }).catch(function (err) {
        showError("chat-error", String(err.message || err));
      }).then(function () {
        send.disabled = false;
        root.setAttribute("data-chat", "done");
      });
    });
  }

  // -- text-to-image --------------------------------------------------------------------------
  var imageForm = byId("image-form");
  if (imageForm) {
    var status = byId("image-status");
    var bar = byId("image-progress");
    var figure = byId("image-figure");
    var picture = byId("image-result");
    var imageCost = byId("image-cost");
    var generate = byId("image-generate");

    var number = function (id) {
      var value = byId(id).value;
      return value === "" ? undefined : Number(value);
    };

    var finish = function () { generate.disabled = false; };

    var poll = function (ticket) {
      post("/playground/api/images/status", ticket).then(function (response) {
        if (!response.ok) {
          return failure(response).then(function (m) { showError("image-error", m); finish(); });
        }
        return response.json().then(function (job) {
          status.textContent = "Status: " + job.status +
            (job.progress != null ? " · " + Math.round(job.progress * 100) + "%" : "") +
            (job.queue_position != null ? " · place in line " + job.queue_position : "");
          status.setAttribute("data-status", job.status);
          if (job.progress != null) { bar.hidden = false; bar.value = job.progress; }
          if (job.status === "success") {
            bar.value = 1;
            picture.src = job.image_url;
            figure.hidden = false;
            imageCost.textContent = costLine(job, "1 image");
            imageCost.setAttribute("data-cost", job.cost || "");
            finish();
          } else if (job.status === "error" || job.status === "cancelled") {
            showError("image-error", job.message);
            finish();
          } else {
            setTimeout(function () { poll(ticket); }, 400);
          }
        });
      }).catch(function (err) { showError("image-error", String(err)); finish(); });
    };

    imageForm.addEventListener("submit", function (e) {
      e.preventDefault();
      showError("image-error", "");
      figure.hidden = true;
      picture.removeAttribute("src");
      imageCost.textContent = "";
      bar.hidden = true;
      bar.value = 0;
      generate.disabled = true;
      status.textContent = "Submitting…";
      var body = {
        model: byId("image-model").value,
        scheduler: byId("image-scheduler").value,
        steps: number("image-steps"),
        cfgScale: number("image-cfg"),
        width: number("image-width"),
        height: number("image-height"),
        prompt: byId("image-prompt").value,
        negativePrompt: byId("image-negative").value || undefined
      };
      post("/playground/api/images", body).then(function (response) {
        if (!response.ok) {
          return failure(response).then(function (m) {
            status.textContent = "";
            showError("image-error", m);
            finish();
          });
        }
        return response.json().then(poll);
      }).catch(function (err) { showError("image-error", String(err)); finish(); });
    });
  }

  // -- speech ---------------------------------------------------------------------------------
  var speechForm = byId("speech-form");
  if (speechForm) {
    var player = byId("speech-audio");
    var speechCost = byId("speech-cost");
    var speak = byId("speech-speak");
    speechForm.addEventListener("submit", function (e) {
      e.preventDefault();
      showError("speech-error", "");
      speechCost.textContent = "";
      speak.disabled = true;
      var body = {
        model: byId("speech-model").value,
        voice: byId("speech-voice").value,
        response_format: byId("speech-format").value,
        input: byId("speech-text").value
      };
      post("/playground/api/speech", body).then(function (response) {
        if (!response.ok) return failure(response).then(function (m) { showError("speech-error", m); });
        return response.json().then(function (result) {
          player.src = result.audio;
          player.hidden = false;
          speechCost.textContent = costLine(result, result.units + " characters");
          speechCost.setAttribute("data-cost", result.cost || "");
        });
      }).catch(function (err) {
        showError("speech-error", String(err));
      }).then(function () { speak.disabled = false; });
    });
  }
})();
