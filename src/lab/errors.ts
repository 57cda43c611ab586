/** A lab operation that cannot proceed (lab not up, no mode applied, a step failed). */
export class LabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabError';
  }
}
