"""Sweep ``rescore_sigma`` (and ``nearest`` decoding) of a grouped CenterNet
checkpoint on its config's validation set, one forward pass per image.

    python tools/analysis_tools/sweep_rescore_sigma.py CONFIG CKPT [--sigmas 1 2 3 4 6 8]
        [--no-nearest] [--subset N] [--device cpu] [--out table.json]
        [--cfg-options KEY=VALUE ...]

Prints a markdown table (AP, AP50, AP75, AR and per-category AP per
setting) and the best sigma; ``--out`` also writes the results as JSON.
The algorithm is :func:`mmkp_ext.analysis.sweep_rescore_sigma`.
"""
import argparse
import json
import os
import os.path as osp
import sys



def parse_args(argv=None):
    from mmengine.config import DictAction  # no torch: --help stays fast
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='mmengine config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--sigmas',
        type=float,
        nargs='+',
        default=[1, 2, 3, 4, 6, 8],
        metavar='SIGMA',
        help='rescoring sigmas in output pixels (default: 1 2 3 4 6 8)')
    parser.add_argument('--no-nearest',
                        action='store_true',
                        help='do not evaluate decode_mode=nearest')
    parser.add_argument('--subset',
                        type=int,
                        default=None,
                        metavar='N',
                        help='evaluate only the first N validation images')
    parser.add_argument(
        '--device',
        default=None,
        help='device of the model (default: cuda if available, else cpu)')
    parser.add_argument('--out', help='write the results to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (as in tools/test.py)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Imported after parsing so that --help does not load torch / mmpose.
    import torch
    from mmengine.config import Config

    import mmkp_ext  # noqa: F401
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    from mmkp_ext.analysis import (best_rescore_setting, build_sweep_inputs,
                                   format_sweep_table, sweep_rescore_sigma,
                                   sweep_settings)

    try:
        sweep_settings(args.sigmas, not args.no_nearest)
        if args.subset is not None and args.subset < 1:
            raise ValueError(f'--subset must be >= 1, got {args.subset}')
        if not osp.isfile(args.checkpoint):
            raise ValueError(f'checkpoint {args.checkpoint} does not exist')
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        model, dataloader, evaluator_cfg = build_sweep_inputs(
            cfg, args.checkpoint, device=args.device)
    except (TypeError, ValueError, RuntimeError, OSError) as err:
        sys.exit(f'error: {err}')

    results = sweep_rescore_sigma(model,
                                  dataloader,
                                  evaluator_cfg,
                                  args.sigmas,
                                  include_nearest=not args.no_nearest,
                                  subset=args.subset)
    best = best_rescore_setting(results)
    ap = next(v for k, v in best['metrics'].items()
              if k.rsplit('/', 1)[-1] == 'AP')
    print(f'\nrescore_sigma sweep of {args.checkpoint} on '
          f'{results[0]["num_images"]} validation images\n')
    print(format_sweep_table(results))
    print(f'\nbest rescore_sigma: {best["rescore_sigma"]:g} (AP {ap:.4f})')
    if args.out:
        out_dir = osp.dirname(osp.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config,
                           checkpoint=args.checkpoint,
                           best_rescore_sigma=best['rescore_sigma'],
                           results=results),
                      f,
                      indent=2)
        print(f'results written to {args.out}')


if __name__ == '__main__':
    main()
