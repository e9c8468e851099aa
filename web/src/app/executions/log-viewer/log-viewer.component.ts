import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  ViewEncapsulation,
  afterNextRender,
  effect,
  inject,
  input,
  signal,
  untracked,
  viewChild,
} from '@angular/core';
import { MatSlideToggleModule } from '@angular/material/slide-toggle';
import { MatTooltipModule } from '@angular/material/tooltip';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import type { Observable } from 'rxjs';
import type { ExecutionFeedEvent } from '../../core/live/execution-stream';
import { LogFormatter, TextTail } from './log-format';

/** What the viewer renders: ordered output, notes about missing chunks, and notes of its source (a container log's). */
export type LogEvent = Extract<ExecutionFeedEvent, { type: 'output' | 'gap' }> | { type: 'note'; text: string };

const TEXT_FLUSH_MS = 50;
const USER_SCROLL_WINDOW_MS = 800;

/**
 * The live log: an xterm.js terminal (ANSI colours, 200,000 lines of scrollback,
 * output always rendered as text, never as HTML), stderr in red, following the
 * tail unless the user scrolls up. A hidden `<pre data-testid="log-text">`
 * holds the last 2,000 lines as plain text (set with textContent).
 */
@Component({
  selector: 'app-log-viewer',
  changeDetection: ChangeDetectionStrategy.OnPush,
  // xterm's stylesheet is global by nature; the component's own rules are prefixed `kp-log`.
  encapsulation: ViewEncapsulation.None,
  imports: [MatSlideToggleModule, MatTooltipModule],
  templateUrl: './log-viewer.component.html',
  styleUrl: './log-viewer.component.scss',
})
export class LogViewer {
  /** The output to render; a new source clears the terminal. */
  readonly source = input.required<Observable<LogEvent>>();
  /** Shown while no output has arrived yet. */
  readonly placeholder = input('Waiting for output…');
  /** Grow the terminal to the bottom of the scrolling area (min 320 px), so the tail is in view. */
  readonly fill = input(false);

  private readonly destroyRef = inject(DestroyRef);
  private readonly el: HTMLElement = inject(ElementRef).nativeElement;
  private readonly host = viewChild.required<ElementRef<HTMLElement>>('term');
  private readonly textEl = viewChild.required<ElementRef<HTMLElement>>('text');

  protected readonly follow = signal(true);
  protected readonly lineCount = signal(0);
  protected readonly hasOutput = signal(false);

  private readonly term = new Terminal({
    convertEol: true,
    scrollback: 200_000,
    disableStdin: true,
    cursorBlink: false,
    cursorStyle: 'bar',
    cursorInactiveStyle: 'none',
    screenReaderMode: false,
    fontFamily: "ui-monospace, 'SFMono-Regular', 'DejaVu Sans Mono', Menlo, Consolas, monospace",
    fontSize: 13,
    lineHeight: 1.25,
    allowProposedApi: false,
    // OSC 8 hyperlinks in output: only http(s), opened without access to this page.
    linkHandler: {
      activate: (_e, uri) => {
        if (/^https?:\/\//i.test(uri)) window.open(uri, '_blank', 'noopener,noreferrer');
      },
      allowNonHttpProtocols: false,
    },
    theme: {
      background: '#0d1520',
      foreground: '#d7dee8',
      cursor: '#0d1520',
      selectionBackground: '#2c4a6e',
      black: '#1c2633',
      red: '#ff6b6b',
      green: '#6fd08c',
      yellow: '#f2c76e',
      blue: '#6cb0ff',
      magenta: '#d49bff',
      cyan: '#5fd4d4',
      white: '#d7dee8',
      brightBlack: '#6b7a8c',
      brightRed: '#ff8f8f',
      brightGreen: '#8fe3a6',
      brightYellow: '#ffd98c',
      brightBlue: '#94c6ff',
      brightMagenta: '#e2b8ff',
      brightCyan: '#8ae6e6',
      brightWhite: '#ffffff',
    },
  });
  private readonly fit = new FitAddon();
  private formatter = new LogFormatter();
  private readonly tail = new TextTail(2000);
  private textTimer: ReturnType<typeof setTimeout> | null = null;
  private lastUserInput = 0;
  private readonly frames = new Set<number>();
  private opened = false;

  constructor() {
    this.term.loadAddon(this.fit);
    this.term.onScroll(() => this.onScroll());

    effect((onCleanup) => {
      const source = this.source();
      const sub = untracked(() => {
        this.reset();
        return source.subscribe((e) => this.render(e));
      });
      onCleanup(() => sub.unsubscribe());
    });

    afterNextRender(() => {
      const el = this.host().nativeElement;
      this.term.open(el);
      this.opened = true;
      this.refit();
      // Scrolling up leaves the tail; scrolling back to the bottom follows it again (see onScroll).
      el.addEventListener(
        'wheel',
        (e) => {
          this.lastUserInput = Date.now();
          if (e.deltaY < 0 && this.term.buffer.active.baseY > 0) this.follow.set(false);
        },
        { capture: true, passive: true },
      );
      for (const type of ['mousedown', 'keydown', 'touchstart'] as const) {
        el.addEventListener(type, () => (this.lastUserInput = Date.now()), { capture: true, passive: true });
      }
      const ro = new ResizeObserver(() => this.nextFrame(() => this.refit()));
      ro.observe(el);
      // Whatever moves or resizes the area above us changes the room left for the log.
      const scroller = this.scroller();
      const room = new ResizeObserver(() => this.nextFrame(() => this.fitHeight()));
      room.observe(scroller);
      if (scroller.firstElementChild) room.observe(scroller.firstElementChild);
      this.fitHeight();
      this.destroyRef.onDestroy(() => {
        ro.disconnect();
        room.disconnect();
      });
    });

    this.destroyRef.onDestroy(() => {
      if (this.textTimer) clearTimeout(this.textTimer);
      for (const id of this.frames) cancelAnimationFrame(id);
      this.term.dispose();
    });
  }


  protected setFollow(on: boolean): void {
    this.follow.set(on);
    if (on) {
      this.term.scrollToBottom();
    } else {
      const b = this.term.buffer.active;
      // Step off the bottom, so that xterm stops following new lines too.
      if (b.viewportY >= b.baseY && b.baseY > 0) this.term.scrollLines(-1);
    }
  }

  private render(e: LogEvent): void {
    const out = e.type === 'output' ? this.formatter.format(e.chunks) : e.type === 'gap' ? this.formatter.gap(e.fromSeq, e.toSeq) : this.formatter.note(e.text);
    if (!out.terminal) return;
    if (!this.hasOutput()) this.hasOutput.set(true);
    this.term.write(out.terminal, () => {
      if (this.follow()) this.term.scrollToBottom();
    });
    this.tail.append(out.text);
    this.scheduleText();
  }

  private reset(): void {
    this.term.reset();
    this.formatter = new LogFormatter();
    this.tail.clear();
    this.hasOutput.set(false);
    this.follow.set(true);
    this.scheduleText();
  }

  /** The hidden text copy is refreshed at most every 50 ms (it is rebuilt whole). */
  private scheduleText(): void {
    if (this.textTimer) return;
    this.textTimer = setTimeout(() => {
      this.textTimer = null;
      // textContent: output is text, never markup (threat model T34).
      this.textEl().nativeElement.textContent = this.tail.toString();
      this.lineCount.set(this.tail.lineCount);
    }, TEXT_FLUSH_MS);
  }

  private onScroll(): void {
    if (Date.now() - this.lastUserInput > USER_SCROLL_WINDOW_MS) return;
    const b = this.term.buffer.active;
    const atBottom = b.viewportY >= b.baseY;
    if (atBottom !== this.follow()) this.follow.set(atBottom);
  }

  /** Layout changes wait for the next frame (changing size inside a ResizeObserver callback loops). */
  private nextFrame(fn: () => void): void {
    const id = requestAnimationFrame(() => {
      this.frames.delete(id);
      fn();
    });
    this.frames.add(id);
  }

  private scroller(): HTMLElement {
    return this.el.closest<HTMLElement>('mat-sidenav-content, .mat-drawer-content') ?? document.documentElement;
  }

  private fitHeight(): void {
    if (!this.fill()) return;
    const scroller = this.scroller();
    const top = this.el.getBoundingClientRect().top - scroller.getBoundingClientRect().top + scroller.scrollTop;
    const toolbar = this.el.querySelector('.kp-log-toolbar')?.getBoundingClientRect().height ?? 0;
    const room = Math.floor(scroller.clientHeight - top - toolbar - 26);
    const px = `${Math.max(320, room)}px`;
    if (this.el.style.getPropertyValue('--kp-log-height') !== px) this.el.style.setProperty('--kp-log-height', px);
  }

  private refit(): void {
    if (!this.opened) return;
    const el = this.host().nativeElement;
    if (el.clientWidth === 0 || el.clientHeight === 0) return;
    try {
      this.fit.fit();
    } catch {
      // not laid out yet
    }
    if (this.follow()) this.term.scrollToBottom();
  }
}
