// A lab operation that cannot proceed (lab not up, no mode applied, a step failed): exit 5.
export { LabError } from '../util/errors';
