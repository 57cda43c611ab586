// The part of the `cap` package (libpcap bindings, no types of its own) that slbctl uses.
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
