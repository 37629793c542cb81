// Keyboard shortcuts for a page: a key pressed anywhere on the page (outside a text field, a select or a
// button that takes keys) is sent to Python as the trigger "key" when the page bound it. The element draws
// only a one-line hint of the bindings; Streamlit keeps it, and this listener, across reruns.

const listeners = new WeakMap();

function typing(target) {
  const tag = (target && target.tagName) || "";
  return target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(tag));
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const hint = parentElement.querySelector(".keys-hint");
  hint.textContent = data.hint || "";
  let state = listeners.get(parentElement);
  if (!state) {
    state = { bound: new Set(), send: setTriggerValue };
    const onKey = (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
      const key = event.key;
      if (!state.bound.has(key)) return;
      event.preventDefault();
      state.send("key", { key, at: Date.now() }); // the time makes two presses of one key two triggers
    };
    document.addEventListener("keydown", onKey);
    state.remove = () => document.removeEventListener("keydown", onKey);
    listeners.set(parentElement, state);
  }
  state.bound = new Set(data.keys || []);
  state.send = setTriggerValue;
  return () => {
    state.remove();
    listeners.delete(parentElement);
  };
}
