// A tag input: type a word and press Enter (or a comma) to add it as a chip; Backspace in
// the empty field removes the last chip; each chip has its own remove button.

import { t } from './i18n.js';

export class TagInput {
  /**
   * @param {HTMLElement} root   an element holding a `<ul class="chips">` and an `<input>`
   * @param {object} options
   * @param {(text: string) => string | null} options.parse   the tag for typed text, or null
   * @param {(tag: string) => string} [options.label]          how a tag is shown
   * @param {number} [options.max]                             most tags allowed
   * @param {(tags: string[]) => void} [options.onChange]
   * @param {(why: 'unknown' | 'full', text: string) => void} [options.onReject]
   *                                                            told why text was not added
   */
  constructor(root, { parse, label = (tag) => tag, max = 20, onChange = () => {}, onReject = () => {} }) {
    this.root = root;
    this.list = root.querySelector('.chips');
    this.input = root.querySelector('input');
    this.parse = parse;
    this.label = label;
    this.max = max;
    this.onChange = onChange;
    this.onReject = onReject;
    this.tags = [];

    this.input.addEventListener('keydown', (event) => {
      if ((event.key === 'Enter' || event.key === ',') && this.input.value.trim()) {
        event.preventDefault();
        this.commit();
      } else if (event.key === 'Enter') {
        // An empty field: let Enter submit the form.
      } else if (event.key === 'Backspace' && !this.input.value && this.tags.length) {
        this.remove(this.tags[this.tags.length - 1]);
      }
    });
    // Pasted or autocompleted lists ("music, chess") become several tags.
    this.input.addEventListener('input', () => {
      if (this.input.value.includes(',')) this.commit();
    });
    this.input.addEventListener('change', () => this.commit());
    this.input.addEventListener('blur', () => this.commit());
    root.addEventListener('click', (event) => {
      if (event.target === root || event.target === this.list) this.input.focus();
    });
  }

  /** Adds what was typed; keeps what could not be added in the field. */
  commit() {
    const parts = this.input.value.split(',');
    const left = [];
    for (const part of parts) {
      if (!part.trim()) continue;
      const tag = this.parse(part);
      if (tag === null) {
        left.push(part.trim());
        this.onReject('unknown', part.trim());
      } else if (this.tags.length >= this.max && !this.tags.includes(tag)) {
        left.push(part.trim());
        this.onReject('full', String(this.max));
      } else {
        this.add(tag);
      }
    }
    this.input.value = left.join(', ');
  }

  /** Replaces every tag. */
  set(tags) {
    this.tags = [];
    this.list.replaceChildren();
    for (const tag of tags) this.add(tag, false);
  }

  add(tag, notify = true) {
    if (this.tags.includes(tag)) return;
    this.tags.push(tag);
    const item = document.createElement('li');
    item.className = 'chip';
    item.dataset.tag = tag;
    const text = document.createElement('span');
    text.textContent = this.label(tag);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'chip-remove';
    remove.setAttribute('aria-label', t('tags.remove', { tag: this.label(tag) }));
    remove.textContent = '×';
    remove.addEventListener('click', () => {
      this.remove(tag);
      this.input.focus();
    });
    item.append(text, remove);
    this.list.append(item);
    if (notify) this.onChange(this.tags);
  }

  remove(tag) {
    this.tags = this.tags.filter((t) => t !== tag);
    this.list.querySelector(`[data-tag="${CSS.escape(tag)}"]`)?.remove();
    this.onChange(this.tags);
  }
}
