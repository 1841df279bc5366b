/** The extension's icon: three tasks and their edges. */
import { LabIcon } from '@jupyterlab/ui-components';

const LOGO = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M11 5.5h2v5h-2zM7.2 14.6l3.9-3.2 1.3 1.5-3.9 3.2zM12.8 12.9l1.3-1.5 3.9 3.2-1.3 1.5z"/>
    <circle cx="12" cy="4" r="3"/>
    <circle cx="6" cy="18" r="3"/>
    <circle cx="18" cy="18" r="3"/>
    <circle cx="12" cy="11.5" r="2"/>
  </g>
</svg>`;

export const rayIcon = new LabIcon({ name: 'jupyter-ray:logo', svgstr: LOGO });
