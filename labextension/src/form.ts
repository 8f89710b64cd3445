/** The create form: its request body, and the checks it can make before asking. Pure code. */
import { formatBytes, parseSize } from './format';
import type { IServerConfig } from './wire';

export interface ICreateForm {
  name: string;
  image: string;
  memory: string;
  cpus: string;
  network: boolean;
  /** a persistent volume of the user's to mount (issue 23); blank: none */
  volume: string;
}

/** The POST sandboxes body from the create form; blank fields are left to the server's defaults. */
export function createBody(form: ICreateForm): { [key: string]: unknown } {
  const body: { [key: string]: unknown } = { network: form.network };
  if (form.name.trim()) {
    body.name = form.name.trim();
  }
  if (form.image.trim()) {
    body.image = form.image.trim();
  }
  if (form.memory.trim()) {
    // "512M" stays a string (the server parses sizes); a bare number is bytes
    const memory = form.memory.trim();
    body.memory = /^\d+$/.test(memory) ? Number(memory) : memory;
  }
  if (form.cpus.trim()) {
    const cpus = Number(form.cpus.trim());
    // a non-number goes as typed so that the server's message names the field
    body.cpus = isNaN(cpus) ? form.cpus.trim() : cpus;
  }
  if (form.volume.trim()) {
    body.volume = form.volume.trim();
  }
  return body;
}

/** Field -> message for what the form can tell before asking the server (which checks again). */
export type FieldErrors = { [field: string]: string };

export function checkForm(form: ICreateForm, config: IServerConfig | null): FieldErrors {
  const errors: FieldErrors = {};
  const name = form.name.trim();
  if (name && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
    errors.name = "1-63 letters, digits, '_', '.' or '-', starting with a letter or digit";
  }
  const volume = form.volume.trim();
  if (volume && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(volume)) {
    errors.volume = "a volume's name: 1-63 letters, digits, '_', '.' or '-'";
  }
  const memory = form.memory.trim();
  if (memory) {
    const bytes = parseSize(memory);
    if (bytes === null) {
      errors.memory = 'a size such as 512M or 2G';
    } else if (config && bytes > config.maximums.memory) {
      errors.memory = `at most ${formatBytes(config.maximums.memory)} on this server`;
    }
  }
  const cpus = form.cpus.trim();
  if (cpus) {
    const value = Number(cpus);
    if (isNaN(value) || value <= 0) {
      errors.cpus = 'a positive number, e.g. 0.5';
    } else if (config && value > config.maximums.cpus) {
      errors.cpus = `at most ${config.maximums.cpus} on this server`;
    }
  }
  if (form.network && config && !config.allow_network) {
    errors.network = 'this server does not allow network access';
  }
  if (form.image.trim() && config && !config.images.includes(form.image.trim())) {
    errors.image = `one of ${config.images.join(', ')}`;
  }
  return errors;
}
