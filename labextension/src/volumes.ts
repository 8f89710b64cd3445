/**
 * The panel's "Volumes" section, without its widgets (issue 23): the user's persistent volumes
 * from sandbox/api/volumes with their usage (used / limit), making one and removing one after the
 * user confirms. Pure code: the requests and the dialogs are passed in, so node tests drive it.
 */
import { formatBytes } from './format';
import type { IVolume } from './wire';

/** The volume routes (api.ts in the extension, a fake server in tests). */
export interface IVolumesClient {
  list(): Promise<IVolume[]>;
  create(name: string, size: string | null): Promise<IVolume>;
  remove(name: string): Promise<void>;
}

/** What the section asks of the user interface. */
export interface IVolumesUI {
  /** A name and size ('' = the server's default) for a new volume (null: the user cancelled). */
  askNew(): Promise<{ name: string; size: string } | null>;
  /** Whether the user really wants to delete this volume and its files (a dialog). */
  confirmRemove(volume: IVolume): Promise<boolean>;
  /** Report a failure. */
  error(title: string, error: unknown): void;
}

/** What a volume's filesystem holds at most: its capacity (its size less ext4's own metadata), else its size. */
function limitOf(volume: IVolume): number {
  return volume.capacity > 0 ? volume.capacity : volume.size;
}

/** "3 MiB of 1 GiB used", as the CLI says it (models.VolumeModel.usage). */
export function usageText(volume: IVolume): string {
  return `${formatBytes(volume.used)} of ${formatBytes(limitOf(volume))} used`;
}

/** How full it is, 0 to 100 (the bar's value). */
export function usagePercent(volume: IVolume): number {
  const limit = limitOf(volume);
  return limit > 0 ? Math.min(100, Math.round((100 * volume.used) / limit)) : 0;
}

/** Where it is mounted, and in which of the user's sandboxes. */
export function mountText(volume: IVolume): string {
  const where = volume.sandboxes.length ? `mounted in ${volume.sandboxes.join(', ')}` : 'not mounted now';
  return `${volume.mount_path} in sandboxes that ask for it; ${where}`;
}

export class Volumes {
  constructor(
    private client: IVolumesClient,
    private ui: IVolumesUI,
    /** Called after every change of `volumes` or `loaded`. */
    private onChange: () => void = () => undefined
  ) {}

  volumes: IVolume[] = [];
  /** Whether the list has been read once. */
  loaded = false;
  /** Why there are no volumes here (the server's 503 message), or null. */
  unavailable: string | null = null;

  async refresh(): Promise<void> {
    const asked = ++this.asked;
    let volumes: IVolume[];
    try {
      volumes = await this.client.list();
    } catch (error) {
      this.ui.error('Could not list your volumes', error);
      return;
    }
    if (asked !== this.asked) {
      return; // a later refresh was started: its answer wins
    }
    this.volumes = volumes;
    this.loaded = true;
    this.onChange();
  }

  /** Ask for a name and size and make the volume; it, or null if none was made. */
  async create(): Promise<IVolume | null> {
    const asked = await this.ui.askNew();
    if (asked === null || !asked.name.trim()) {
      return null;
    }
    let volume: IVolume;
    try {
      volume = await this.client.create(asked.name.trim(), asked.size.trim() || null);
    } catch (error) {
      this.ui.error('Could not make a volume', error);
      return null;
    }
    await this.refresh();
    return volume;
  }

  /** Delete a volume after the user confirms; true if it was removed. */
  async remove(volume: IVolume): Promise<boolean> {
    if (!(await this.ui.confirmRemove(volume))) {
      return false;
    }
    let removed = true;
    try {
      await this.client.remove(volume.name);
    } catch (error) {
      removed = false;
      this.ui.error(`Could not remove the volume ${volume.name}`, error);
    }
    await this.refresh();
    return removed;
  }

  private asked = 0;
}
