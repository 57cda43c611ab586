// The part of the `cap` package (libpcap bindings) slbctl uses.
declare module 'cap' {
  import { EventEmitter } from 'node:events';
  export class Cap extends EventEmitter {
    /** Opens the device (always promiscuous, immediate mode) and returns the link type name. */
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    close(): void;
    on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): this;
  }
}
