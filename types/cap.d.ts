// The part of the `cap` package (libpcap bindings, no types of its own) that slbctl uses.
// Only the DSR health probe (src/health/vip-path.ts) still does; lab captures
// use the native addon (src/capture/capture.ts), which keeps the kernel's
// timestamps that cap drops.
//
// A Cap must never be garbage collected: cap 0.2.1's native destructor is
// unsafe. Its close() stops the libuv poll handle but never uv_close()s it
// (and after a failed open() it touches a poll handle that was never
// initialised), and it emits an async-hooks destroy from inside a GC
// callback, which crashed Node 20 with SIGSEGV in the integration tests. A
// closed Cap holds no libpcap resources, so keeping the small wrapper
// referenced is cheap.
declare module 'cap' {
  import { EventEmitter } from 'node:events';
  export class Cap extends EventEmitter {
    /**
     * Opens the device in the calling thread's network namespace (always
     * promiscuous, snap length 65535, immediate mode when libpcap.so loads)
     * and returns the link type: 'ETHERNET', 'RAW', 'LINKTYPE_LINUX_SLL',
     * 'NULL', 'IEEE802_11_RADIO' or 'Unknown linktype N'. Throws libpcap's error.
     */
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    /** Stops capturing; true when it was open. */
    close(): boolean;
    /** Emitted on the main thread once `nbytes` of a frame are in the open() buffer; no timestamp. */
    on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
  }
}
