// What the page finds on `window` at run time but the type checker cannot see: Tauri's
// global API (`withGlobalTauri` in tauri.conf.json), as much of it as the page uses.

interface Window {
  __TAURI__: {
    core: { invoke<T = any>(cmd: string, args?: Record<string, unknown>): Promise<T> };
    event: {
      listen<T = any>(event: string, handler: (event: { payload: T }) => void): Promise<() => void>;
    };
  };
}
