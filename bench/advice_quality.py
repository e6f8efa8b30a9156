"""How good is `rankwise advise`? Regret of the advised config on a synthetic world, on the CPU.

Nothing is downloaded: the script makes its own world, tokenizer and base model from fixed seeds.

The world. Entities with two-syllable names ("ka zor") drawn from a small syllable set, each with
one value per attribute (city, job, colour, pet, ...; every value equally likely). Rendered as text
in two ways: statements ("ka zor lives in vek .") and questions ("q : where does ka zor live ? a :
vek ."). The tokenizer is word level (one token per syllable, keyword and value).

The base. A tiny Llama (transformers LlamaConfig, random init) pretrained on statements and
questions about the *known* entities, so it knows them and knows how questions map to facts (full
mode: 4,000 steps, after which the value loss on the known questions is 0.003; at the 2,000 used
until 6 December 2026 it was 0.25 or 0.80 by the draw of the initial weights, a base that did not
know a third of its facts; the script warns when a base is above KNOWN_ENOUGH). It is
saved (config.json + safetensors) under a cache folder outside the repository
($RANKWISE_BENCH_CACHE, default <tmp>/rankwise-bench/advice_quality/base-<hash of what pretrains it: the mode's
base fields, the seed, the world's facts and the code that makes and pretrains on them, torch and transformers;
not the grid, nor how the fine-tuning tasks are split>) and reused by later runs.

The tasks, mirroring `rankwise advise --task`:
- knowledge (advised as task `domain`): new facts about *unseen* entities. Training rows: every
  statement about the new entities, plus the questions about half of them. Two eval sets, scored
  apart from the same trials: `knowledge`, the statements about the other half (trained rows: did
  the adapter store the facts? the capacity question), and `extraction`, the questions about that
  half (held-out entities: can the stored facts be asked for in another form?). At 3 epochs or
  fewer no config gets either below chance (see Measured): there the regret says little about
  facts. Validation: where the advice says to validate new facts on questions about trained facts
  (its `to_supply` names data.val_path; before that key, its data.val_ratio reason did, from d7f355e
  on), the runs are given such a file: the questions about a fifth of the held-out half, whose statements are trained, and the
  `extraction` set asks about the other four fifths (until 7 December 2026 it asked about the whole
  half). Otherwise the advice's data.val_ratio holds a random share of the rows out of every run
  (grid included), so a few `knowledge` rows are not trained on.
- format (advised as task `format`): a new format for asking about *known* entities, a card
  ("q : ka zor ? live : vek ?"): words the base knows from its questions, in an order it never saw
  (the attribute named by a word of its question: live, job, colour, pet, eat). Trained on the
  cards of some known entities, evaluated on the cards of the other known entities (held out): the
  new format must reach facts the base already holds. Until 6 December 2026 the card was written in
  words the base never saw ("card : ka zor | city = vek |"): six of its eleven tokens had untrained
  embeddings, which no format task on a pretrained model has (every token of a real template has a
  pretrained embedding; a new token is an added token, a different advice), so the task also asked
  the adapter to learn what those words mean (see Measured).
Each eval loss is the mean cross-entropy of the attribute-value tokens of its rows (chance: ln 16).

The advised config comes from rankwise's recommender at run time (`advise()`, the function behind
`rankwise advise --json`, here for this model on this machine, with the task's sequence length and
what `advise --dataset` reads from the rows: their count, median length and the share of it the loss
reads, so the rank's capacity check sees the data; before 5 December 2026 the script passed the row
count only), so the script measures whatever the advice is when it runs. `--advice-from REV`
also scores the advice of an older commit (its recommender, called the same way) against the same
grid.

Training is a plain peft loop that applies the settings the trainer's worker passes to peft and
the HF Trainer (trainer/worker.py): LoraConfig(r, alpha, dropout, bias, target set resolved by the
model spec, rsLoRA), AdamW with the config's weight decay and gradient clipping (with
lora.loraplus_lr_ratio, peft's LoRA+ optimizer as the worker builds it), the config's
scheduler with its warmup ratio, the effective batch (micro-batch × grad accum) as one batch, the
config's epochs, the loss over the completion tokens. Not the worker itself: a subprocess per
trial would cost more time in start-up than in training. The run's validation rows (the advice's
data.val_ratio split, or the data.val_path rows where it says to give them) are evaluated as the
worker's Trainer does, and with train.stop_on overfitting the run stops where the doctor's rule fires
and keeps its best evaluation's adapter (finetune). The eval sets are scored once, on the adapter
the run ends with; they never choose anything but the "lr swept" oracle.

The grid (per task; settings it does not sweep stay at the advice's values):
- targets: all-linear, and attention-only (`standard`) at the same rank *and* at the rank that
  matches all-linear's trainable parameter count;
- rank: a few values from capacity-limited to ample;
- α/lr coupling: α = 2r (the update scale stays 2: the stable lr should fall as r rises) and α
  fixed (the scale falls as 1/r: the optimal lr should stay put);
- epochs: a short and a longer run;
- the learning rate swept per condition (each condition at its best lr).
Regret = (eval loss of the advised config − best eval loss of the grid) / best eval loss. The
target is regret ≤ 5% for each task. Also shown: the regret of the advice's choices with only its
learning rate swept ("structure" regret: does the advice pick the right targets/rank/α/epochs even
when the lr scale does not transfer to a model this small), the best lr per rank and coupling
(where does the lr optimum move), all-linear vs attention-only at matched parameters, and the best
loss by rank (is the rank capacity-limited). The point is the logic of the advice, not absolute
numbers: a model this small is not a 7B model.

Measured (3 December 2026, the shared 2-core machine, 1 thread, beside the CI suite; "now" = the
advice of 16cc9e9 (unchanged since), which trains 10 epochs under 1,000 rows; "old" = 985e8ce,
3 epochs). Full mode (ranks 4, 16, 64; epochs 3, 10; lrs 1e-3, 3e-3, 1e-2): pretraining 126 s;
knowledge 116 trials in 2348 s, format 116 in 1028 s; 58.5 min wall in all on one loaded thread
(over the 40-minute aim: the 10-epoch trials cost 3.3x the 3-epoch ones; 2 threads on a quiet
machine should halve it, not measured). Model 0.2M parameters; a rank unit is 4,224 LoRA
parameters on all-linear, 1,344 on attention; held-out loss without an adapter 6.04 (knowledge),
8.85 (format); chance ln 16 = 2.773.

  eval set    advice  advised config                          loss   best   regret  lr swept
  knowledge   now     all-linear r=64 α=32 lr=5e-4 ep=10     2.465  1.127  118.8%    34.1%
  knowledge   old     all-linear r=64 α=32 lr=5e-4 ep=3      4.426  1.127  292.7%   136.7%
  extraction  now     (as above)                             2.993  1.964   52.4%    11.3%
  extraction  old     (as above)                             4.558  1.964  132.1%    44.5%
  format      now     all-linear r=4 α=32 lr=5e-4 ep=10      2.029  0.546  271.4%   169.1%
  format      old     all-linear r=4 α=32 lr=5e-4 ep=3       4.566  0.546  735.6%   328.6%

Again with --jobs 2 (3 December, later, the same advice, a fresh machine and a quiet 2 cores):
pretraining 115 s; knowledge 112 distinct trials in 753 s, format 112 in 313 s; 19.8 min wall in all
(the 40-minute aim is met). The pretrained base differs from the run above (held-out loss without
an adapter 5.64 knowledge, 10.54 format: its cache was rebuilt here; the earlier base may have been
cached by an older world, not traced), so the figures moved:

  eval set    advice  advised config                          loss   best   regret  lr swept
  knowledge   now     all-linear r=64 α=32 lr=5e-4 ep=10     2.470  1.497   65.0%    14.3%
  extraction  now     (as above)                             2.975  2.206   34.9%     6.9%
  format      now     all-linear r=4 α=32 lr=5e-4 ep=10      1.968  1.008   95.2%    70.9%

A learning rate scaled by width, tried and not kept (3 December, later; the same base, 38.8 min wall
beside other work): below 2048 wide, Tinker's formula-based get_lr (tinker-cookbook @9dfcc3a) would
scale the LoRA rate by (2048/hidden)^0.781 on Llama: x15 here, 7.5e-3. Scored against the advice
before it (`--advice-from 2810b21`, lr 5e-4) on the same grid:

  eval set    advice       advised config                          loss   best   regret  lr swept
  knowledge   width lr     all-linear r=64 α=32 lr=7.5e-3 ep=10   2.689  1.497   79.7%    14.3%
  knowledge   size lr      all-linear r=64 α=32 lr=5e-4 ep=10     2.470  1.497   65.0%    14.3%
  extraction  width lr     (as above)                             2.798  2.206   26.8%     6.9%
  extraction  size lr      (as above)                             2.975  2.206   34.9%     6.9%
  format      width lr     all-linear r=4 α=32 lr=7.5e-3 ep=10    2.901  1.008  187.7%    70.9%
  format      size lr      all-linear r=4 α=32 lr=5e-4 ep=10      1.968  1.008   95.2%    70.9%

The optimum of the advised structure is 3e-3 (knowledge) and 1e-3 (format, r=4: alpha/r = 8), x2-6
the size rate, not x15: the formula, calibrated on models 2048 wide and wider, overshoots this far
out. The advice keeps the size rate and quotes the formula as a hint with a sweep suggestion. The
pretrained base reproduced the run above exactly (held-out 5.639 / 10.535 without an adapter, the
same size-rate losses), so the cache key fix (d3c7df2) holds.

Best: knowledge and extraction all-linear r=64 α=128 (2r) lr 1e-3, the sweep's lowest lr; format
attention-only r=64 α=32 lr 3e-3. The logic findings below held in both runs.

The epochs rule (10 under 1,000 rows, LIMA) more than halves every regret; no advised config is
within 5%. What the grid says about the advice's logic:
- epochs: 10 beat 3 in every condition of both tasks (at 3 no config stores the new facts).
- lr: the level does not transfer (5e-4, the <= 3.5B band, is 2-6x below a 0.2M model's optimum:
  3e-3 at alpha 32 on every rank but r=4 of knowledge, 1e-3); it is the largest part of the
  regret as advised ("lr swept" removes most of it on knowledge: 118.8% -> 34.1%).
- coupling: with alpha = 32 fixed the best lr stays at 3e-3 across ranks on both tasks (format
  r=4..64, knowledge r=16..64); with alpha = 2r it falls from 1e-2/3e-3 at r=4 to 1e-3 at r=64 --
  advisor/coupling.py's parametrisation holds. The overall best knowledge run is alpha = 2r = 128 at
  lr 1e-3, the sweep's lowest lr (an optimum between the fixed-alpha grid points, not against it).
- targets: on knowledge all-linear beats attention-only at matched parameters at every rank (1.127
  vs 2.434 at ~270k); on format, at 10 epochs, attention-only wins at matched parameters (0.572 vs
  1.081 at ~17k, 0.634 vs 0.770 at ~270k; it lost at 3 epochs in the 2 December run). The
  all-linear default follows the published ablations (QLoRA, Biderman et al., TML); this toy
  format task is the one place the bench disagrees, reported, not acted on.
- rank: the format band's r=4 is capacity- or speed-limited here (all-linear 1.081 at r=4 vs
  0.768 at r=16); knowledge keeps improving to r=64 (2.059, 1.566, 1.127).

A finer learning-rate grid (5 December 2026, the advice of 16cc9e9 unchanged; the base rebuilt as in the
first run: held-out 6.038 / 8.852 without an adapter; --jobs 2, 13.3 min): --lrs 1e-3,2e-3,3e-3,5e-3,1e-2.
The "lr swept" regrets did not move (knowledge 34.1%, extraction 11.3%, format 169.1%): the advised
structure's best rate is 3e-3 on either grid, so the gap is not the grid's coarseness. What it is, on
knowledge: at r=64 the advice's alpha = 32 (update scale 0.5) reaches 1.512 at its best rate (3e-3), alpha =
2r = 128 reaches 1.127 at 1e-3, an interior optimum (a second run with --lrs 2.5e-4,5e-4,1e-3 --ranks 16,64
--epochs 10: 1e-3 stays best). With alpha fixed the best rate is nearly rank-invariant (2e-3, 2e-3, 3e-3 at
r = 4, 16, 64), as LoRA Without Regret reports, but on this toy the high rank does worse under it than under
alpha = 2r; at r = 4 alpha = 32 is marginally ahead (1.968 vs 1.993). Reported, not acted on: the advice keeps
the published parametrisation (advisor/coupling.py), and a 0.2M-parameter model is the weakest evidence here.

With the data's figures (6 December 2026, db2a01d's bench, the advice of 984f2dd against 2ff7987's; --jobs 2, 12.0 min wall):
the recommender now sees the rows as `advise --dataset` reads them (count, median length, the completions'
share), and the capacity check counts a row's tokens once, not once an epoch. The advice did not move: knowledge
keeps r = 64 (the domain band's lower end), format r = 4 (its 500 rows' completions fit r = 4's capacity), so the
regrets are the run above to the digit (65.0% / 34.9% / 95.2%; lr swept 14.3% / 6.9% / 70.9%), and the base
reproduced again (held-out 5.639 / 10.535).

A base that knows its facts and a card in words it knows (6 December 2026, later; the advice of 7a459c6, unchanged:
knowledge all-linear r=64 α=32 lr 5e-4, format all-linear r=4; --jobs 2, 9.8 min wall). Two faults of the bench
itself, found this day: (1) at 2,000 pretraining steps the base's value loss on its known questions was 0.25 (the
cached base of the 5-6 December runs) or 0.80 (the same world less six unused words: another draw of the initial weights), so
the format task asked for facts the base half held; at 4,000 steps it is 0.003 on either draw. (2) The card
("card : ka zor | city = vek |") was six words of eleven the base never saw, their embeddings untrained, which no
format task on a pretrained model has; now "q : ka zor ? live : vek ?", known words in a new order. Before the
card change, a check of the advised format config on the old base: rows whose attribute word the base had seen
(job, pet) and those it had not (city, colour, food) trained alike (1.72 vs 1.73 at r=4), so the untrained words
that mattered were the card's own (card, |, =), shared by every row. Each fault apart, on the 4,000-step base:

  eval set    world                     advised config                       loss   best   regret  lr swept
  knowledge   old card (140 words)      all-linear r=64 α=32 lr=5e-4 ep=10  2.784  1.571   77.2%     9.4%
  knowledge   known-word card (134)     (as above)                          2.691  1.186  126.8%     7.3%
  extraction  old card                  (as above)                          3.122  2.211   41.2%     1.9%
  extraction  known-word card           (as above)                          3.006  2.050   46.6%     1.2%
  format      old card                  all-linear r=4 α=32 lr=5e-4 ep=10   1.995  0.338  490.7%    74.4%
  format      known-word card           (as above)                          0.087  0.043  104.0%     0.0%

(the knowledge rows differ by the draw of the initial weights only: the vocabulary sizes differ; the old card's
run was the bench of 7a459c6 with 4,000 steps, not committed). What moved the logic findings:
- the converged base ends "attention-only wins on format": with the old card all-linear and attention-only tie at
  matched parameters (0.343 vs 0.338 at ~67k), and on the known-word card all-linear r=4 is the grid's best (0.043;
  attention 0.051 at r=4, 0.055 at matched r=13);
- the known-word card ends "r=4 is capacity-limited on format" (old card: r=4 0.453 vs r=16 0.343; known words:
  r=4 0.043, r=16 0.062, r=64 0.055): the rank was paying to learn six untrained words, not the format;
- knowledge: all-linear beats attention-only at matched parameters at every rank (1.186 vs 2.406 at ~270k); with
  α = 32 fixed the best lr stays 1e-3..3e-3 across ranks; the best is α = 2r at r=64, lr 1e-3 (1.186), α = 32 at
  its best lr 1.273: the structure regret, 7.3%, is the coupling (the published parametrisation, kept).
The advice's structure (lr swept) is within 5% on extraction and format, 7.3% on knowledge. As advised the
regret is 46.6-126.8%: the learning rate. 5e-4 (the <= 3.5B band) is 2-6x below this 64-wide model's optimum
(1e-3 format, 3e-3 knowledge), as in every run above; a better-trained base makes a too-low rate cost more.

Seed 1, the same code (--seed 1, 11.8 min wall with its pretraining; base: known-question loss 0.003):

  eval set    advised config                          loss   best   regret  lr swept
  knowledge   all-linear r=64 α=32 lr=5e-4 ep=10     2.544  0.837  204.1%    35.6%
  extraction  (as above)                             3.138  1.602   95.9%     8.4%
  format      all-linear r=4 α=32 lr=5e-4 ep=10      0.410  0.296   38.3%    21.5%

What holds over both seeds: all-linear far ahead of attention-only at matched parameters on knowledge (0.837 vs
2.245 at ~270k); r=64 best on knowledge; the rate 5e-4 too low; and on knowledge α = 2r (128) at r=64, lr 1e-3,
ahead of the advised α = 32 at its best rate (3e-3): 1.186 vs 1.273 at seed 0, 0.837 vs 1.135 at seed 1. That gap
is the largest part of the structure regret and the one finding against the advice that both draws repeat; a
finer lr grid did not close it on the 5 December base. What does not hold: the format task's winner (seed 0
all-linear r=4 α=32; seed 1 attention-only r=50 α=2r, 0.296, with all-linear and attention-only within 2% at every
match and the advised structure at 0.360): format differences are within one draw's spread.

6 December 2026, later: a finer grid and a rank cap. On the same base, knowledge alone at r=64, 10 epochs and
nine rates (5e-4..7e-3): α = 2r still beat α = 32 at its best rate (1.073 at 2e-3 against 1.254 at 4e-3; extraction
1.729 against 1.884), so the gap was not the old grid's coarseness. At r=16 and 32 (ranks 16,32, rates 1e-3..1e-2):
r=32 was the best rank on both eval sets (knowledge 1.007 with α = 2r, extraction 1.684 with α = 32), ahead of
r=64. On this 64-wide model r=64 is full rank on every adapted matrix, not a high rank: at r = hidden/2 an adapter
on a hidden x hidden projection already holds as many parameters as the projection. The advice now keeps to that
(ModelSpec.low_rank_cap: knowledge is advised r=32, not 64) and check warns above it (rank-above-width); it binds
only on models under 256 wide (512 for the r = 256 note). The full grid is now ranks 4, 16, 32, 64 and rates
5e-4, 1e-3, 2e-3, 4e-3, 8e-3 (250 trials a task; 23.2 min wall with --jobs 2, the base cached); "before" is the
advice of 0fd3e4d (--advice-from), scored on the same grid:

  eval set    advice  advised config                          loss   best    gap   regret  lr swept
  knowledge   now     all-linear r=32 α=32 lr=5e-4 ep=10     2.693  1.007  1.686  167.5%    12.9%
  knowledge   before  all-linear r=64 α=32 lr=5e-4 ep=10     2.691  1.007  1.684  167.3%    24.6%
  extraction  now     (r=32, as above)                       3.043  1.729  1.314   76.0%     1.3%
  extraction  before  (r=64, as above)                       3.006  1.729  1.277   73.9%    15.5%
  format      both    all-linear r=4 α=32 lr=5e-4 ep=10      0.087  0.033  0.054  163.6%    29.2%

- The cap halves the knowledge structure regret and takes extraction within 5%. What is left on knowledge is
  the coupling at r=32 (α = 2r 1.007, α = 32 at its best rate 1.136); on extraction the coupling goes the other
  way at r=32 (α = 32 1.751, α = 2r 1.789). α = 2r wins clearly only at full rank (r=64: 1.073 vs 1.254 and
  1.729 vs 1.996), so the published parametrisation (α = 32) stays.
- Format: the new 4e-3 rate finds attention-only r=4 at 0.033 against all-linear r=4's 0.043, 0.010 nats (the
  "29.2%"); at seed 1 attention-only won too (r=50, by 0.06). A small, repeated edge on a task whose losses are
  near zero; the studies behind all-linear (QLoRA §4, TML, Biderman) are on real models, so all-linear stays.
- As advised, every regret is over 75%: the rate. 5e-4 is 4-8x below this model's optimum (2e-3 to 4e-3).

Seed 1 on the same grid (21.6 min wall, its base cached), "before" again the advice of 0fd3e4d:

  eval set    advice  advised config                          loss   best    gap   regret  lr swept
  knowledge   now     all-linear r=32 α=32 lr=5e-4 ep=10     2.591  0.837  1.755  209.7%    40.7%
  knowledge   before  all-linear r=64 α=32 lr=5e-4 ep=10     2.544  0.837  1.708  204.1%    49.6%
  extraction  now     (r=32, as above)                       3.228  1.602  1.627  101.5%    14.3%
  extraction  before  (r=64, as above)                       3.138  1.602  1.536   95.9%    11.8%
  format      both    all-linear r=4 α=32 lr=5e-4 ep=10      0.410  0.280  0.129   46.2%    28.4%

This draw's best on both knowledge sets is full rank with α = 2r (r=64, lr 1e-3: 0.837 and 1.602, against r=32's
1.072 and 1.831): the rank cap is not what this model's loss asks for at α = 2r. Under the advice's α = 32, r=32
beats r=64 on three of the four seed/eval-set pairs (knowledge 1.136 vs 1.254 and 1.177 vs 1.252; extraction 1.751
vs 1.996) and loses the fourth by 2% (1.831 vs 1.791). The cap rests on the arithmetic (an adapter past hidden/2
holds more parameters than the matrix it adapts; for a model this small, full fine-tuning is the option past it),
not on this toy, where r = 64 means r = hidden. Format at seed 1 prefers higher ranks (all-linear r=64 0.310, r=4
0.360; attention-only r=64 0.280 at the sweep's lowest rate), at seed 0 r=4: the format band's verdict changes with
the draw.

7 December 2026: the advice follows its own sweep. For a model narrower than the learning rate's sources measured,
the advice now gives a learning-rate sweep (advisor/coupling.py lr_grid: doublings from the size rate, 5e-4, up to
what Tinker's width scaling would say, 7.5e-3 here), and the table's "followed" column scores the advice as a user
follows it: of that sweep's runs, the one whose kept adapter has the lowest validation loss (the advice's own
val_ratio rows, held out of training; not the eval sets). The advice of 2c05e5e; torch 2.14.1 on a new machine, so
the base was pretrained afresh and differs from the runs above (known-question loss 0.004; held-out loss without an
adapter 8.049 knowledge, 2.522 format); 246 trials a task, 54.7 min wall with --jobs 2 (beside the suite for half
of it):

  eval set    advised config                          loss   best    gap   regret  followed  lr swept
  knowledge   all-linear r=32 α=32 lr=5e-4 ep=10     2.662  1.473  1.189   80.7%     68.1%      2.5%
  extraction  (as above)                             3.162  2.340  0.822   35.1%     18.4%      8.5%
  format      all-linear r=4 α=32 lr=5e-4 ep=10      0.031  0.018  0.013   71.4%    219.4%     58.1%

- The validation loss picked the sweep's top rate, 7.5e-3, on knowledge (2.476 knowledge, 2.769 extraction), where
  the eval sets' best rate for the advised structure is 2e-3 (1.510, 2.538). This task's validation rows are
  statements and questions about the new entities held out of training: values drawn at random, which no adapter
  can predict from the trained rows, so their loss cannot show which rate stored the trained facts best (the
  `knowledge` eval set is trained rows). A limit of the bench's knowledge task as much as of the advice: on real
  data the validation rows share what the training rows teach. On format it picked 4e-3 (0.058 against 0.031 at
  the advised 5e-4): a spread of 0.03 nats on losses near zero.
- With the rate swept (an oracle on the eval sets) the advised structure is within 2.5% on knowledge: on this base
  alpha = 2r = 64 at r=32 (1.473) is only 0.037 ahead of the advised alpha = 32 (1.510), and r=32 is the best rank
  (r=64 1.506). Extraction: 8.5%, r=16 best (2.340) against the advised r=32 (2.538 at its best rate). Format: 58.1%,
  attention-only r=4 at 0.018 against all-linear r=4 at 0.029 (0.011 nats; as in the 6 December runs).
- What held from the runs above: all-linear far ahead of attention-only at matched parameters on knowledge (1.473 vs
  2.518 at ~135k), format's near-zero tie going to attention-only; with alpha = 32 fixed the best rate stays at
  2e-3..4e-3 across ranks on knowledge and extraction; r=64 under alpha = 2r needs the lowest rate (5e-4).

7 December 2026, later: validation the knowledge task can use. The advice for `--task domain` now says that a random
split of one-row facts holds out facts no training row teaches, and to give data.val_path with questions about
trained facts (d7f355e). Followed here: the knowledge runs (grid included) validate on the questions about 12 of the
60 held-out entities (60 rows; their statements are trained) and nothing is held out of training; `extraction` asks
about the other 48 (240 rows, was 300), `knowledge` is all 300 statements, every one trained now. Seed 0, the same
base as above (known-question loss 0.004; no adapter 8.049 / 8.057); the knowledge task only (the format advice and
task did not change: its row above stands); 246 trials, 35.3 min wall with --jobs 2:

  eval set    advised config                          loss   best    gap   regret  followed  lr swept
  knowledge   all-linear r=32 α=32 lr=5e-4 ep=10     2.603  1.536  1.068   69.5%      0.2%      0.2%
  extraction  (as above)                             3.281  2.543  0.738   29.0%      0.0%      0.0%

- The validation loss now picks 4e-3 on both (1.539 knowledge, 2.543 extraction), the advised structure's best rate:
  followed as it says, the advice is within 5% of the grid's best on both knowledge eval sets. The random split's
  unteachable rows had picked the sweep's top rate (68.1% and 18.4% above).
- The grid's best: r=32 with alpha = 2r at 2e-3 on knowledge (1.536, 0.003 ahead of the advised alpha = 32 at 4e-3),
  and the advised config itself on extraction. r=32 beats r=64 under either alpha on both sets; all-linear stays far
  ahead of attention-only at matched parameters (knowledge 1.536 vs 2.449 at ~135k).
- As advised, at the size rate 5e-4, still 69.5% / 29.0%: on this 64-wide model the sweep is what gets the rate.

The same at seed 1 (its own world draw and base: known-question loss 0.004, no adapter 7.580 / 7.583; 246 trials,
31.6 min wall with --jobs 2, nothing beside it):

  eval set    advised config                          loss   best    gap   regret  followed  lr swept
  knowledge   all-linear r=32 α=32 lr=5e-4 ep=10     2.575  0.800  1.775  221.8%     67.5%     67.1%
  extraction  (as above)                             2.957  1.435  1.523  106.1%     32.6%     27.9%

- Following works here too: the validation loss picks 2e-3 (1.340 / 1.902), within 0.2% / 3.7% of the advised
  structure at its best rate (4e-3: 1.337 / 1.835).
- The structure misses at this draw: α = 2r = 64 at r=32 and 2e-3 (0.800 / 1.435) is far ahead of the advised
  α = 32 at any rate of the grid (best 1.337 / 1.835); at seed 0 it was 0.003 ahead. The rank (32) and the targets
  (all-linear, 0.800 against attention-only's best 2.331 at matched parameters) are right at both seeds. As in the
  6 December runs, α = 2r is the seed-1 winner: on this toy the fixed α = 32 is not the safe side on every draw.

Seed 2 (7 December 2026, later: trials that train the same thing share one run, 221 runs for 246 trials; fused
AdamW; its own base, known-question loss 0.004, no adapter 7.534 / 7.562; both tasks, 48.6 min wall with --jobs 2,
pretraining 5.2 min of it, and ~5 min of that beside a one-core diagnostic):

  eval set    advised config                          loss   best    gap   regret  followed  lr swept
  knowledge   all-linear r=32 α=32 lr=5e-4 ep=10     2.522  1.219  1.303  106.9%      5.1%      5.1%
  extraction  (as above)                             2.955  1.891  1.064   56.2%      0.0%      0.0%
  format      all-linear r=4 α=32 lr=5e-4 ep=10      0.096  0.043  0.053  125.2%     62.3%      2.0%

- Knowledge: the pick (4e-3, 1.280) is the advised structure's best rate; the grid's best is r=64 with α = 2r at 1e-3
  (1.219). At the advised r=32 the fixed α = 32 now wins (1.280 vs 1.314 knowledge, 1.891 vs 2.141 extraction).
- Format: the advised structure at its best rate (2e-3) ties the grid's best (0.043); the validation loss on 25
  cards picks 4e-3 (0.069).
- Over the three seeds, at the advised r=32: α = 2r wins by 0.54 nats at seed 1, ties at seed 0 (0.003) and loses at
  seed 2 (0.034 knowledge, 0.25 extraction). At r=64 (= the model's width, where α 32 scales the update by 0.5)
  α = 2r wins at every seed (1.591 vs 1.711, 0.871 vs 1.360, 1.219 vs 1.500). Nothing here supports changing the
  advised α at the advised rank.
- α = 2r is, under Adam, the fixed α with B's learning rate r/16 times A's (the same B·A step; A moves half as far at
  r=32): a LoRA+ ratio in disguise. LoRA+ at the paper's ratio 16 (α 32, r 32, lr 2.5e-4 to 2e-3, each seed) was
  tried beside the bench: its best is behind the grid's best at every seed (knowledge 1.541 / 1.190 / 1.382 against
  1.536 / 0.800 / 1.219; extraction 2.757 / 2.080 / 2.239 against 2.543 / 1.435 / 1.891). So the advice does not
  turn LoRA+ on for new facts either. (finetune applies lora.loraplus_lr_ratio as the worker does, for an advice that
  sets it.)

Format at seed 0 again, after the advice's validation split came to hold 100 rows where the row count is known (0.2
of these 500: 25 rows had picked a wrong rate of the sweep at seeds 0 and 2; advisor/recommend.py VAL_ROWS), so the
grid trains on 400 cards; 221 runs, 6.6 min wall with --jobs 2, the base cached:

  eval set    advised config                          loss   best    gap   regret  followed  lr swept
  format      all-linear r=4 α=32 lr=5e-4 ep=10      0.036  0.024  0.013   53.6%     14.6%     14.6%

- The validation loss now picks 1e-3, the advised structure's best rate (0.027): followed 14.6%, was 219.4%.
- What is left is the structure: attention-only r=4 (0.024) ahead of all-linear r=4 by 0.003 nats, on losses
  near zero.
- Seed 2, the same (6.3 min): as advised 156.4%, followed 29.0% (was 62.3%), lr swept 29.0%: the pick (2e-3, 0.060)
  is again the advised structure's best rate; the grid's best is attention-only r=32 α=64 (0.046), 0.014 nats ahead.

7 December 2026, later still: the worker's evaluation cadence and its stop, and a fault of the advice they showed.
(1) finetune evaluated every 100 steps and at the end, where the worker evaluates train.evals_per_epoch = 4 times an
epoch (advisor/cadence.py) and not at the end: 6 evaluations of a knowledge run where the worker makes 40. (2) Its stop
applied the eval-loss half of the doctor's overfitting rule only, not the train-loss half. Both fixed: finetune now
evaluates at cadence.resolve's interval and stops by advisor/doctor.overfitting itself, on the train loss it logs every
logging_steps as the Trainer does. (3) At 40 evaluations the doctor's rule (two rises, 2% above the best) stopped runs
of new facts half an epoch after a local minimum: at seed 0, r=32, α=32, lr 2e-3 the validation loss went 0.878,
0.882, 0.927 (stopped: knowledge 2.465) and on to 0.514 (run out: knowledge 1.091). The first run with (1) and (2)
and the one with (1) and (2) (seed 0: followed 74.4% and 89.5% on knowledge, 35.7% and 40.3% on extraction)
measured that rule more than the advice's structure. The doctor now
waits an epoch of training off the best, a quarter of the run at most (advisor/doctor.py OVERFIT_EPOCHS; Prechelt 1998:
validation curves have several local minima, and patient criteria generalize slightly better), so its verdict no longer
depends on how often a run evaluates. Fine-tunes also run without the padding mask (right padding: the same scored
logits; ~10% a step). This machine is an AMD EPYC, and it pretrains other bases than the 7 December runs above under the
same cache keys (seed 0 without an adapter: 7.831 / 7.755 knowledge / extraction, 1.204 format; there 8.049 / 8.057,
2.522): the float kernels are part of the draw, so these rows compare with each other, not with the rows above.
Full mode, --jobs 2: seed 0 17.3 min wall (base cached), seed 1 19.2 min with its pretraining (2.2 min):

  seed  eval set    advised config                          loss   best    gap   regret  followed  lr swept
  0     knowledge   all-linear r=32 α=32 lr=5e-4 ep=10     2.498  0.728  1.770  243.2%     49.9%     32.7%
  0     extraction  (as above)                             3.019  1.432  1.588  110.9%     36.2%     13.0%
  0     format      all-linear r=4 α=32 lr=5e-4 ep=10      0.126  0.044  0.083  188.4%     66.8%     62.7%
  1     knowledge   all-linear r=32 α=32 lr=5e-4 ep=10     2.496  0.777  1.719  221.4%     59.2%     54.7%
  1     extraction  (as above)                             3.176  1.700  1.476   86.9%     13.4%     13.4%
  1     format      all-linear r=4 α=32 lr=5e-4 ep=10      0.546  0.329  0.217   65.8%     23.8%     23.3%
  2     knowledge   all-linear r=32 α=32 lr=5e-4 ep=10     2.664  1.153  1.511  131.1%     23.0%     23.0%
  2     extraction  (as above)                             3.233  2.168  1.065   49.1%      0.0%      0.0%
  2     format      all-linear r=4 α=32 lr=5e-4 ep=10      0.129  0.075  0.054   72.8%     47.4%     38.3%

(seed 2: 20.1 min with its pretraining; its base's known-question loss 0.007.)
- The stop now fires in 24, 42 and 37 of the 221 knowledge runs (seeds 0, 1, 2) and 41, 54 and 18 of the format
  runs; the knowledge losses are about half what they were under the half-epoch stop (grid best 0.728 at seed 0,
  against 1.340).
- The rate: the validation loss picks the advised structure's best rate or the doubling beside it (knowledge: seed 0
  2e-3 where the eval sets' best is 4e-3, 1.091 against 0.966; seed 1 4e-3 against 2e-3, 1.236 against 1.201; seed 2
  the best, 4e-3; format 1e-3, 1e-3, 2e-3 against 2e-3, 2e-3, 1e-3: 0.073 / 0.408 / 0.110 against 0.071 / 0.406 /
  0.103). Extraction at seed 2 is within 5% followed: the advised config at 4e-3 is the grid's best.
- α at the advised r=32: α = 2r = 64 is ahead of the advised α = 32 at its best rate on knowledge at all three seeds
  (0.728 against 0.966; 1.016 against 1.201; 1.359 against 1.418) and on extraction at two (1.432 against 1.618; 1.739
  against 1.927; seed 2: 2.259 against 2.168): the largest part of the knowledge structure regret. Under the
  half-epoch stop it had been ahead at one seed of three. The grid's best knowledge run is α = 2r at r=64 (= the
  width) at seeds 1 and 2 (0.777, 1.153) and r=32 at seed 0; under α = 32, r=32 beats r=64 at seeds 0 and 2. At r=4,
  where α = 32 is the larger scale (8 against 2), α = 2r wins two seeds of three. Not acted on: the fixed α is the
  published parametrisation at ranks far below the width (LoRA Without Regret), and here r=32 is half of it; the
  toy's repeated preference for an update scale of 2 at r = hidden/2 is reported for a wider base to test.
- Targets: all-linear far ahead of attention-only at matched parameters on knowledge at every seed (0.728 against
  2.374 at ~135k; 1.016 against 2.482; 1.359 against 2.352); on format attention-only keeps a small edge (0.044
  against 0.056; 0.329 against 0.339; 0.075 against 0.079), 0.004-0.012 nats.
- Still not within 5% followed: knowledge (49.9 / 59.2 / 23.0%), extraction at seeds 0 and 1 (36.2 / 13.4%), format
  (66.8 / 23.8 / 47.4%; gaps of 0.029 / 0.079 / 0.035 nats).
- A probe of a wider base (not a committed mode: Mode.hidden 128 in a copy of this script, seed 0, knowledge only,
  --ranks 32 --epochs 10 --lrs 1e-3,2e-3,4e-3; pretraining 6.0 min, 23 runs 4.0 min; known-question loss 0.016).
  The advice there is r=64 (its half-width cap) with α = 32, and followed (its sweep picks 4.4e-3) it is within 4.8%
  (knowledge, 1.636 against 1.561) and 0.0% (extraction) of that small grid's best, the advised config at 4e-3 / 4.4e-3
  itself. At r=32, a quarter of this width, α = 32 ties or beats α = 2r (1.595 against 1.601; 2.540 against 2.612).
  One seed and a grid without r=64 at α = 2r: a hint that the 64-wide model's preference for α = 2r is a property of
  r = hidden/2 there, not a test of it.

7 December 2026, session 34: the wide mode (--wide: the full world on a base 128 wide, 3 layers, 4,000 pretraining
steps; grid ranks 16, 32, 64 at 10 epochs, the five rates of the full grid, both couplings, attention-only at the same
rank and at matched parameters). Here too the advice is r = 64 for knowledge (the half-width cap) and r = 4 for format,
α = 32, and its sweep 5e-4 to 4.4e-3. With it, the knowledge task's validation questions reach the advice's own floor
for a validation set (recommend.VAL_ROWS = 100, which its data.val_path note now names): 20 of the 60 held-out
entities validate, the extraction set asks about the other 40 (was 12 and 48; enough_to_validate). Seed 0, the probe's
base (known-question loss 0.016; no adapter 8.727 knowledge, 8.611 extraction, 7.874 format); knowledge 81 runs in
13.5 min, format 86 runs in 5.6 min, --jobs 2:

  seed  eval set    advised config                          loss   best    gap   regret  followed  lr swept
  0     knowledge   all-linear r=64 α=32 lr=5e-4 ep=10     2.723  1.533  1.190   77.7%      6.8%      1.9%
  0     extraction  (as above)                             2.978  2.350  0.628   26.7%      0.0%      0.0%
  0     format      all-linear r=4 α=32 lr=5e-4 ep=10      2.000  0.640  1.360  212.6%      4.0%      4.0%
  1     knowledge   (as above)                             2.824  1.613  1.211   75.1%     37.2%     37.2%
  1     extraction  (as above)                             3.120  2.267  0.854   37.7%     16.9%     16.9%
  1     format      all-linear r=4 α=32 lr=5e-4 ep=10      0.503  0.212  0.291  137.0%     72.4%     49.7%
  2     knowledge   (as above)                             2.672  0.881  1.791  203.2%     21.7%     21.7%
  2     extraction  (as above)                             2.917  1.566  1.352   86.3%     14.2%     14.2%
  2     format      all-linear r=4 α=32 lr=5e-4 ep=10      0.741  0.193  0.549  284.9%     83.5%     56.0%
(seeds 1 and 2: new bases, 6.1 min to pretrain each, known-question loss 0.004 / 0.003; 25.6 and 27.3 min wall in all.)
- α: on knowledge α = 2r is ahead of the advised α = 32 (each at its best rate) at r = 64, half this width, at all
  three seeds (1.533 against 1.561; 1.613 against 2.213; 0.982 against 1.313); at r = 32 it goes each way once and
  ties once (seed 0 1.601 against 1.595, seed 1 2.411 against 2.009, seed 2 0.881 against 1.172); the grid's best
  knowledge config is α = 2r at every seed (r = 64, 64, 32). After seed 0 alone (1.8%) the r = hidden/2 preference
  looked like a property of the 64-wide base; seeds 1 and 2 say it is not: at r = hidden/2 an update scale of 2 beats
  the fixed α's 0.5 for new facts at either width. Under Adam that is the fixed α with B's rate 4x A's (a LoRA+ ratio
  of 2r/32); LoRA+ at its paper's ratio 16 lost on the 64-wide base.
  Extraction splits (α = 32 ahead at seed 0's r = 64, 2.569 against 2.613; α = 2r ahead at seeds 1 and 2).
- The validation pick: 4.4e-3, the sweep's top rate, beside the eval sets' best rate of the grid (4e-3). Those two
  rates differ by 0.075 nats on knowledge (1.636 against 1.561) and by 0.22 on extraction (2.350 against 2.569, the
  other way): the spread between two nearby rates of one draw is all of the followed regret here, and about the size of
  the 5% target. The 100-question split picked what the 60-question one did (the same 6.8%; extraction, on 40
  entities now, 0.0% either way).
- Targets: all-linear far ahead on knowledge and extraction at matched parameters at every seed (seed 0: 1.533
  against 2.497 at ~540k). On format attention-only is the best at every seed (0.640 against all-linear's 0.649 at
  seed 0; 0.212 against 0.330 at seed 1; 0.193 against 0.288 at seed 2): on the 64-wide base its edge was 0.004-0.012
  nats, here at seeds 1 and 2 it is ~0.1 nats, a third of the loss. The all-linear default follows the published
  ablations on real models (QLoRA §4, TML, Biderman et al.); on this toy's format task, where the facts are already
  in the base and only the question's form is new, the attention layers alone do it better. Reported, not acted on.
- Followed, the advice is within 5% at seed 0 on extraction and format (6.8% on knowledge), not at seeds 1 and 2: the
  target is not met on the wide base either.
- Redraws (--redraws, added after the three seeds; seed 1, knowledge, the grid at r = 64 only so that the first draw's
  best, α = 2r at 2e-3, is in it; 41 runs, 8.2 min). The advice followed and that best config, trained again on two
  more draws of the trials (followed / best, draw by draw): knowledge 2.213 / 1.613, 1.459 / 2.374, 2.616 / 2.788;
  extraction 2.651 / 2.267, 2.207 / 2.651, 2.773 / 2.876. Means: knowledge 2.096 against 2.258, extraction 2.544
  against 2.598: the advice followed is *ahead* of the first draw's best config on the mean (regret -7.2% and -2.1%),
  and a single draw's regret runs from -38.6% to +37.2% (knowledge), -16.7% to +16.9% (extraction). So the 37.2% of
  seed 1's table is inside one draw's spread, and the first draw's best (1.613) was a lucky draw of its config (2.374
  and 2.788 on the next two): on the knowledge task one draw cannot measure a 5% regret, and neither can it carry the
  α findings above on its own (α = 2r's lead at r = hidden/2 is three seeds of one draw each). A verdict against the
  5% target needs the means of several draws per config; with ~0.5 nats between draws of one config on knowledge,
  that is more draws than this bench's 40 minutes hold for a whole grid.

The regret on the means (7 December 2026, later: --redraws 3, full mode, seeds 0-2, 22-24 min wall each with --jobs 2
and the bases cached). A redraw now trains again the advice followed (its sweep, picked on validation each draw) and
each eval set's three best configs of the first draw (each condition's best rate, a config once), on three fresh
draws; the means leave out the first draw, where the contenders were picked, and the verdict is the followed mean
against the best contender's mean (the first draw's figures are seed 0's 32.7 / 14.9 / 66.8% above):

  eval set     seed 0                         seed 1                         seed 2
  knowledge    23.7% (1.386 vs 1.121, r=64)   64.3% (1.069 vs 0.651, r=64)   15.4% (1.599 vs 1.385, r=32)
  extraction    1.5% (2.026 vs 1.995)         23.7% (1.890 vs 1.528)          4.9% (2.362 vs 2.252)
  format       95.7% (0.108 vs 0.055)         17.6% (0.430 vs 0.366)         10.5% (0.093 vs 0.085)

- The target (each advised config within 5%) is met on the means twice in nine (extraction at seeds 0 and 2). One
  draw misleads both ways: seed 2's first draw put the advice followed at 4.4% (knowledge) and 0.0% (extraction);
  on the means they are 15.4% and 4.9%.
- Knowledge: what holds across draws is the update scale. At r = 32 (half this width) α = 2r at 2e-3 beats the
  advice's α = 32 (its sweep's pick, 2e-3 or 4e-3) on the mean at every seed: 1.202 against 1.386, 0.877 against
  1.069, 1.385 against 1.599 (13-18% lower); r = 64 (the full width) with α = 2r is lower again at seeds 0 and 1
  (1.121, 0.651) and not at seed 2 (2.046). Under Adam α = 2r at a rate is the fixed α with B's rate 2r/32 times A's
  (LoRA+ at ratio 2 here). The wide base (session 34, one draw a config) had that lead at r = hidden/2 at all three
  seeds and not at r = hidden/4; real runs sit at r <= hidden/16 (r = 64-256 on 4,096-8,192 wide models), so the
  advice keeps α = 32 (the TML parametrisation it follows) and this is reported, not acted on: a test of α = 2r or
  LoRA+ at ratio 2-4 for --task domain at r >= hidden/4 needs redraws on both bases.
- Format: the first draw's attention-only lead holds on the means at seed 0 only (attention r=64 0.055 against the
  advice's 0.108: 0.053 nats, the largest relative regret of the table on the smallest loss). At seeds 1 and 2 the
  best means are all-linear (r=32 α=32 at 2e-3: 0.366; r=16 at 2e-3: 0.085), and seed 2's attention-only contenders
  (0.115, 0.130) are behind the advice followed (0.093). So "attention-only is best on format" was partly the
  winner's curse on this base; what is left is that the advice's r = 4 trails higher all-linear ranks by 0.008-0.064
  nats.
- The wide base's format finding, redrawn (--wide --tasks format --seed 1 --redraws 3, 7.6 min): the first draw put
  the advice followed at 72.4% (0.503 at the advised rate; the pick 0.366 against attention-only's 0.212, ~0.15 nats).
  On the means of three fresh draws it is 0.313 against attention-only r=50 α=100's 0.296 (5.7%, 0.017 nats), and the
  other two attention-only contenders tie (0.313) and trail (0.397) it. Seeds 0 and 2 the same way (9.3 and 7.9 min):
  at seed 0 the advice followed is ahead of every contender on the mean (0.796 against attention-only r=64's 0.853:
  -6.7%; its first draw said 4.0%); at seed 2 attention-only keeps its lead (r=16 0.257 and r=32 0.260 against 0.325:
  26.4%, 0.068 nats; the first draw said 83.5%). On the wide base, format on the means: -6.7 / 5.7 / 26.4% at seeds
  0 / 1 / 2; attention-only's lead is real at one seed of three, and smaller than one draw showed at every seed.
- The wide base's knowledge task, redrawn (--wide --tasks knowledge --redraws 3, 18-22 min a seed): the regret of the
  means is -4.8 / 6.8 / 63.4% on knowledge and 1.7 / 0.8 / 31.7% on extraction at seeds 0 / 1 / 2 (first draws
  6.8 / 37.2 / 21.7% and 0.0 / 16.9 / 14.2%). Seed 2's best contender on both eval sets is r=32 α=64 (α = 2r, r =
  hidden/4) at 2e-3: 0.727 against the advice followed's 1.188 (r=64 α=32, its sweep's 4.4e-3) on knowledge, 1.390
  against 1.831 on extraction, lower on every draw. Across the six knowledge cells (full and wide, seeds 0-2) the
  best contender on the means is α = 2r at r >= hidden/4 in five (the sixth, wide seed 1, is r=16 α=32, which is
  α = 2r too).

The paired standard error (later on 7 December): a draw is one split, initialisation and order for every config, so
the per-draw differences between the advice followed and the best contender are paired, and their standard error
(regret_error) says what three fresh draws can tell. The regret of the means ± that error, and the verdict at two
standard errors from 5% ("-": the draws cannot tell):

  base  eval set     seed 0              seed 1              seed 2
  full  knowledge    23.6% ± 1.4  no     64.3% ± 2.9  no     15.4% ± 17.1  -
  full  extraction    1.5% ± 5.6  -      23.7% ± 2.5  no      4.9% ± 3.5   -
  full  format       95.8% ± 21.6 no     17.7% ± 5.5  no     10.2% ± 4.1   -
  wide  knowledge    -4.8% ± 16.3 -       6.8% ± 12.4 -      63.4% ± 6.3   no
  wide  extraction    1.7% ± 2.9  -       0.8% ± 2.3  -      31.7% ± 5.3   no
  wide  format       -6.7% ± 23.2 -       5.9% ± 13.7 -      26.4% ± 5.5   no

  (recomputed from the logs' printed draws, three decimals, so a cell can differ from the run's own line by 0.1-0.2
  points.) Eight of eighteen cells are beyond 5% by more than two standard errors, none is within it by as much; the
  ten others need more draws. Issue 18's target is not met, and on the full base's knowledge task (the rank capped at
  half the width, capacity-limited) it is decisively not met.

The α study (7 December 2026, session 37; --alpha-study N): is "α = 2r ahead" a property of the rank, of r against
the width, or of one draw's minimum? At each rank, all-linear at the advice's 10 epochs with α = 32 and with α = 2r,
each at the rate with the lowest mean over N paired draws, and the per-draw difference with its standard error. Under
Adam the scale α/r only sets how fast B moves against A: folded into B, α = 2r is a LoRA+ ratio of 2 at every rank,
α = 32 one of 32/r (8 at r=4, 1 at r=32, 0.5 at r=64). Knowledge task, the α = 32 mean minus the α = 2r mean ± the
paired standard error ("32" / "2r": that one ahead by more than two standard errors; "-": cannot tell):

  base, draws         eval set     r     seed 0              seed 1              seed 2
  full (64), 4        knowledge    4     -0.493 ± 0.192 32   -0.169 ± 0.100 -    -0.030 ± 0.179 -
                                   8     -0.114 ± 0.074 -    +0.003 ± 0.058 -    -0.063 ± 0.275 -
                                   32    +0.198 ± 0.063 2r   +0.191 ± 0.021 2r   +0.175 ± 0.172 -
                      extraction   4     -0.250 ± 0.069 32   -0.055 ± 0.096 -    +0.038 ± 0.109 -
                                   8     -0.003 ± 0.121 -    +0.187 ± 0.097 -    +0.139 ± 0.150 -
                                   32    +0.075 ± 0.092 -    +0.189 ± 0.052 2r   +0.066 ± 0.071 -
  wide (128), 3       knowledge    32    +0.059 ± 0.464 -    +0.032 ± 0.398 -    +0.266 ± 0.111 2r
                                   64    +0.384 ± 0.204 -    -0.042 ± 0.287 -    +0.216 ± 0.077 2r
                      extraction   32    -0.085 ± 0.007 32   -0.042 ± 0.088 -    +0.211 ± 0.129 -
                                   64    -0.082 ± 0.082 -    -0.054 ± 0.240 -    +0.072 ± 0.195 -

(full: rates 5e-4 to 8e-3, and for α = 2r below 32 also 1.6e-2 at seeds 1 and 2; wide: 1e-3 to 8e-3, and for
α = 2r above 32 also 5e-4, which moved one cell (seed 1, knowledge, r = 64: -0.051 ± 0.336 with 1e-3 its bottom rate);
the run with the flag reproduced a scratch script's wide seed 0, the same arms and draws, to the digit. At r=16 on the
full base the two are one config.) Wall time: 13.5-15 min a full seed, 9-11.5
min a wide one, --jobs 2. What it shows:
- On the 64-wide base, at the advised r = 32 (half the width) α = 2r is ahead on the mean in all six cells, by
  0.07-0.20 nats, decisively in three: that is most of the full base's knowledge regret (23.6% / 64.3% / 15.4% on the
  redraws). At r = 8 the two tie; at r = 4 α = 32 is ahead or ties. So the fixed α is not wrong at low rank here; it
  loses at r = hidden/2, where the adapter is no longer low-rank.
- On the 128-wide base it depends on the world's draw: at seed 2 α = 2r is decisively ahead on knowledge at r = 32
  (a quarter of the width) and r = 64 (half), by 0.27 and 0.22 nats; at seeds 0 and 1 no cell is decided for α = 2r,
  and extraction at r = 32, seed 0, has α = 32 ahead.
- Over both bases: at r >= hidden/4, five cells have α = 2r ahead by more than two standard errors and one α = 32
  (twelve cannot tell; the mean favours α = 2r in thirteen of eighteen); at r <= hidden/8, two have α = 32 ahead and
  none α = 2r (ten cannot tell). The fixed α is right, or not wrong, at low rank, as LoRA Without Regret has it; near
  the width the larger scale tends to win, most of all on the stored facts (knowledge).
- Not acted on, for the next plan: the advice keeps α = 32 at every rank. The regime where α = 2r leads is r >=
  hidden/4, which the advice reaches only on models under ~1,000 wide (its half-width cap; real runs sit at r <=
  hidden/16), so "α = 2r past a quarter of the width", with the learning rate coupled (advisor/coupling.py), would
  change little a real run is advised, and rests on this toy alone; it wants the full bench with --redraws on both
  bases before and after. LoRA+ at ratio 2-4, the other idea session 36 left, was read here as this comparison (α = 2r
  at r = 32 as α = 32 with B at twice A's rate); the LoRA+ study below measured it, and the reading does not hold.

The LoRA+ study (7 December 2026, session 38; --loraplus-study N [--loraplus-ratios 2,4]): is LoRA+ a default the
evidence supports, and does it carry the α study's lead? The advised config (its targets, rank, α = 32, 10 epochs)
without LoRA+ and with B's rate 4 and 16 times A's (Hayou et al. 2024 suggest 2^4 for LLaMA-class models), each at
the rate with the lowest mean over N paired draws; a ratio λ also tries halvings below the bottom rate down to
bottom / λ (B at the plain optimum), and 16 drops the top rate. The mean without LoRA+ minus the mean with it ± the
paired standard error ("none": no LoRA+ ahead by more than two standard errors; "4": LoRA+ 4 ahead; "-": cannot tell):

  base, draws     eval set     r   ratio   seed 0               seed 1               seed 2
  full (64), 4    knowledge    32  4       +0.002 ± 0.068 -     +0.058 ± 0.064 -     -0.059 ± 0.194 -
                               32  16      -0.285 ± 0.316 -     +0.094 ± 0.074 -     -0.013 ± 0.037 -
                  extraction   32  4       -0.246 ± 0.075 none  +0.153 ± 0.044 4     -0.208 ± 0.173 -
                               32  16      -0.450 ± 0.124 none  -0.067 ± 0.093 -     -0.119 ± 0.088 -
                  format       4   4       -0.036 ± 0.010 none  -0.148 ± 0.016 none  -0.030 ± 0.005 none
                               4   16      -0.073 ± 0.017 none  -0.222 ± 0.022 none  -0.115 ± 0.045 none
  wide (128), 3   knowledge    64  4       +0.329 ± 0.239 -     +0.184 ± 0.292 -     +0.384 ± 0.076 4
                               64  16      +0.159 ± 0.113 -     +0.104 ± 0.262 -     +0.426 ± 0.106 16
                  extraction   64  4       +0.045 ± 0.044 -     +0.026 ± 0.250 -     +0.318 ± 0.092 4
                               64  16      -0.178 ± 0.030 none  -0.143 ± 0.197 -     +0.415 ± 0.139 16
                  format       4   4       -0.295 ± 0.299 -     -0.085 ± 0.063 -     -0.064 ± 0.067 -
                               4   16      -0.451 ± 0.199 none  -0.154 ± 0.113 -     -0.094 ± 0.069 -

(format's LoRA+ arms had their best mean at the bottom rate tried at full seed 0 (16), seed 1 (4 and 16) and seed 2
(16): their optimum may lie lower still. Wall time: 10.5-12.5 min a full seed, 14-15 min a wide one.) And ratio 2
(--loraplus-ratios 2), full base, knowledge task, against what the α study had for α = 2r on the same draws:
  eval set     seed   LoRA+ 2              α = 2r
  knowledge    0      +0.062 ± 0.067 -     +0.198 ± 0.063 2r
               1      +0.101 ± 0.058 -     +0.191 ± 0.021 2r
               2      -0.089 ± 0.274 -     +0.175 ± 0.172 -
  extraction   0      -0.149 ± 0.122 -     +0.075 ± 0.092 -
               1      +0.156 ± 0.070 2     +0.189 ± 0.052 2r
               2      -0.092 ± 0.124 -     +0.066 ± 0.071 -

LoRA+ 2 trails α = 2r in all six cells, by 0.03-0.26 nats, though the two would be one run were Adam blind to the
gradient's scale (both "no LoRA+ / α = 32 minus it"; 4 paired draws).
What it shows:
- Out of 36 comparisons, no LoRA+ is ahead by more than two standard errors in 10 and LoRA+ in 5; 21 cannot tell.
- At the low rank (format, r = 4, where α = 32 already scales B·A by 8) LoRA+ is behind on the mean in all 12 and
  decisively in 7, by 0.03-0.45 nats.
- Near the width (r = 32 of 64, 64 of 128: scale 1 and 0.5) it depends on the width: on the 64-wide base ratio 4 leads
  on the mean in 3 of 6 and ratio 16 in 1, while no LoRA+ is decisively ahead twice; on the 128-wide base ratio 4
  leads on the mean in 6 of 6 and ratio 16 in 4, decisively at seed 2 (by 0.32-0.43 nats, both eval sets, both
  ratios). That is the paper's argument in small: the ratio's benefit grows with the width.
- So LoRA+ is not made a default: it loses where the advice's ranks usually are (α/r at or above 1), and where it
  wins (α/r below 1) the evidence here is one seed of three on a 128-wide toy. The adapter-start note keeps saying
  when it is worth it. For the next plan: LoRA+ where α/r < 1 (r > 32 at α = 32), which, unlike the α = 2r idea,
  binds on real runs (any rank above 32), with its rate coupled; it wants the paper's own
  setting (width 4096) or a GPU run before it is advice.
- The α study's reading, that under Adam the scale α/r is only a LoRA+ ratio, fails its test (the ratio-2 table),
  and the cause is isolated: gradient clipping. A scratch check through the bench's own finetune (full seed 0, first draw, r = 32,
  rate 2e-3): with max_grad_norm 1.0 (the advice's) α = 64 reaches 0.728 / 1.414 (knowledge / extraction) and α = 32
  with LoRA+ 2 0.876 / 1.651; with clipping off they are one run within 0.002: 0.779 / 1.594 and 0.781 / 1.594. Clipping acts on the norm of A's and B's gradients together, and B's gradient grows with α/r, so the two clip
  differently; and here clipping helped α = 64 (0.728 against 0.779 unclipped). So the α study's lead at r = 32 is
  partly α acting through the clip: a study of max_grad_norm at α = 32 would tell whether a tighter clip is the knob.

Run: python3 bench/advice_quality.py [--quick | --wide] [--redraws N | --alpha-study N | --loraplus-study N
     [--loraplus-ratios 4,16]] [--jobs N] [--threads 1|2]
     [--cache DIR] [--advice-from REV] [--tasks knowledge,format] [--ranks 4,16,32,64] [--epochs 3,10]
     [--lrs 5e-4,1e-3,2e-3,4e-3,8e-3]
--quick (a few minutes) uses a smaller world, a short pretraining and a small grid; --wide the full world on a base
128 wide with a grid of ranks 16-64 at 10 epochs (19 minutes with --jobs 2, 25-27 with a new base). The default (full)
mode takes
17-20 minutes with --jobs 2 on 2 cores (7 December 2026, an AMD EPYC machine: knowledge 12.1-12.3, format 4.9, a new
base +2.2), within issue 18's aim of 40; on the machine of the earlier 7 December runs it took 43-48 (knowledge 32-35,
format 11-13, a new base +4.5-5), before the mask was dropped and on a slower machine: rerun both on one machine to
compare. A knowledge trial is ~580 steps at
~40 ms a step, nearly all of it (profiled) the per-module Python of peft and transformers on a 3-layer model: the
grid's size, not the model, sets the time. Trials that train the same thing share one run (221 runs for 246 trials,
~11% of the trial time), and AdamW is the fused one (~4%); the seed's draw moves the time more than that (how many
knowledge runs stop early). --tasks runs one task.
"""
from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

SYLLABLES = ["ka", "zor", "mi", "tel", "vo", "rin", "sa", "bek", "lu", "dra", "pi", "mon", "ze", "gul", "to", "fen",
             "ri", "yas", "no", "kul", "be", "thar", "wi", "dun"]
ATTRIBUTES = {  # name → (statement template, question, values, the card's word for it: a word of its question)
    "city": ("{e} lives in {v} .", "where does {e} live ?",
             ["vek", "orla", "tamsin", "brev", "quill", "osk", "merra", "dalun", "sif", "pell", "karst", "ume",
              "hollin", "zask", "ferro", "nim"], "live"),
    "job": ("{e} works as a {v} .", "what is the job of {e} ?",
            ["smith", "baker", "sailor", "scribe", "miner", "weaver", "healer", "hunter", "potter", "tanner",
             "mason", "brewer", "fletcher", "cooper", "glazier", "dyer"], "job"),
    "color": ("the favourite colour of {e} is {v} .", "what colour does {e} like ?",
              ["red", "blue", "green", "amber", "violet", "grey", "white", "black", "teal", "gold", "pink", "rust",
               "olive", "navy", "cream", "plum"], "colour"),
    "pet": ("{e} keeps a {v} .", "what pet does {e} keep ?",
            ["cat", "dog", "hawk", "goat", "toad", "owl", "fox", "crow", "mole", "hare", "newt", "wren", "lynx",
             "eel", "ram", "moth"], "pet"),
    "food": ("{e} eats {v} every day .", "what does {e} eat ?",
             ["bread", "figs", "rice", "plums", "beans", "cheese", "eggs", "soup", "nuts", "dates", "kale", "corn",
              "pears", "oats", "honey", "leeks"], "eat"),
}
SPECIALS = ["<pad>", "<s>", "</s>"]
TASKS = {"knowledge": "domain", "format": "format"}  # bench task → rankwise advise --task


@dataclass(frozen=True)
class Mode:
    known: int  # entities in pretraining
    new: int  # unseen entities (knowledge task)
    attributes: int  # how many of ATTRIBUTES each entity has
    format_train: int  # known entities whose cards are trained (the rest are evaluated)
    hidden: int
    layers: int
    pretrain_steps: int
    ranks: tuple[int, ...]  # all-linear ranks of the grid (attention-only at these and at matched params)
    epochs: tuple[float, ...]
    lrs: tuple[float, ...]
    alpha_fixed: float = 32.0


MODES = {
    "quick": Mode(known=80, new=40, attributes=3, format_train=48, hidden=48, layers=2, pretrain_steps=500,
                  ranks=(4,), epochs=(2.0,), lrs=(3e-3, 1e-2)),
    "full": Mode(known=200, new=120, attributes=5, format_train=100, hidden=64, layers=3, pretrain_steps=4000,
                 ranks=(4, 16, 32, 64), epochs=(3.0, 10.0), lrs=(5e-4, 1e-3, 2e-3, 4e-3, 8e-3), alpha_fixed=32.0),
    # the full world on a base twice as wide: the advised ranks sit at a quarter or less of the width for format and
    # at the half-width cap for knowledge, so it asks whether the 64-wide base's findings at r = hidden/2 (alpha = 2r
    # ahead of the fixed alpha) belong to that ratio or to the rank; 10 epochs only (3 lost in every condition of
    # the full runs), ~3x a full trial's time a step
    "wide": Mode(known=200, new=120, attributes=5, format_train=100, hidden=128, layers=3, pretrain_steps=4000,
                 ranks=(16, 32, 64), epochs=(10.0,), lrs=(5e-4, 1e-3, 2e-3, 4e-3, 8e-3), alpha_fixed=32.0),
}
SEED = 0
KNOWN_ENOUGH = 0.1  # value loss on the known questions above which the base does not know its facts (warned)
BASE_FIELDS = ("known", "new", "attributes", "format_train", "hidden", "layers", "pretrain_steps")


# ------------------------------------------------------------------ the world


@dataclass
class Row:
    prompt: list[int]  # not trained on
    completion: list[int]  # trained on
    scored: list[int] = field(default_factory=list)  # indices into completion: the value tokens (eval loss)


class World:
    def __init__(self, mode: Mode, seed: int = SEED):
        rng = random.Random(seed)
        names = [f"{a} {b}" for a in SYLLABLES for b in SYLLABLES if a != b]
        rng.shuffle(names)
        self.attrs = list(ATTRIBUTES)[:mode.attributes]
        self.known = names[:mode.known]
        self.new = names[mode.known:mode.known + mode.new]
        self.facts = {e: {a: rng.choice(ATTRIBUTES[a][2]) for a in self.attrs} for e in self.known + self.new}
        words = set(SYLLABLES) | {"q", "a", ":"}
        for a in self.attrs:
            st, q, values, card = ATTRIBUTES[a]
            assert card in q.split(), f"the card's word for {a} must be one the base knows from its question"
            words |= set(st.split()) | set(q.split()) | set(values)
        words -= {"{e}", "{v}"}
        self.vocab = {w: i for i, w in enumerate(SPECIALS + sorted(words))}
        self.rng = rng

    def ids(self, text: str) -> list[int]:
        return [self.vocab[w] for w in text.split()]

    def statement(self, e: str, a: str) -> Row:
        st = ATTRIBUTES[a][0].format(e=e, v=self.facts[e][a])
        toks = self.ids(st) + [self.vocab["</s>"]]
        return Row([self.vocab["<s>"]], toks, [toks.index(self.vocab[self.facts[e][a]])])

    def question(self, e: str, a: str) -> Row:
        prompt = [self.vocab["<s>"]] + self.ids(f"q : {ATTRIBUTES[a][1].format(e=e)} a :")
        return Row(prompt, self.ids(f"{self.facts[e][a]} .") + [self.vocab["</s>"]], [0])

    def card(self, e: str, a: str) -> Row:
        prompt = [self.vocab["<s>"]] + self.ids(f"q : {e} ? {ATTRIBUTES[a][3]} :")
        return Row(prompt, self.ids(f"{self.facts[e][a]} ?") + [self.vocab["</s>"]], [0])

    def pretrain_rows(self) -> list[Row]:
        return [f(e, a) for e in self.known for a in self.attrs for f in (self.statement, self.question)]

    def task(self, name: str, mode: Mode) -> tuple[list[Row], dict[str, list[Row]], list[Row]]:
        """(train rows, {metric: eval rows}, validation rows for data.val_path) of a task. Knowledge's
        validation rows are questions about a fifth of the held-out half (their statements trained, as
        the advice says to validate new facts), and its extraction eval set asks about the rest; format
        has none (a random split of its cards validates them)."""
        rng = random.Random(f"{SEED}-{name}")
        if name == "knowledge":
            asked = self.new[: len(self.new) // 2]
            held = self.new[len(self.new) // 2:]
            checked, extracted = held[: len(held) // 5], held[len(held) // 5:]
            train = [self.statement(e, a) for e in self.new for a in self.attrs]
            train += [self.question(e, a) for e in asked for a in self.attrs]
            rng.shuffle(train)
            recall = [self.statement(e, a) for e in held for a in self.attrs]  # trained rows: stored?
            return train, {"knowledge": recall,
                           "extraction": [self.question(e, a) for e in extracted for a in self.attrs]}, \
                [self.question(e, a) for e in checked for a in self.attrs]
        known = list(self.known)
        rng.shuffle(known)
        train = [self.card(e, a) for e in known[:mode.format_train] for a in self.attrs]
        rng.shuffle(train)
        return train, {"format": [self.card(e, a) for e in known[mode.format_train:] for a in self.attrs]}, []


# ------------------------------------------------------------------ batches and loss


def batch(rows: list[Row], pad: int, score_only: bool = False):
    import torch

    n = max(len(r.prompt) + len(r.completion) for r in rows)
    ids, mask, labels = [], [], []  # built as lists, made tensors once (a tensor a row cost ~3% of a trial)
    for r in rows:
        seq = r.prompt + r.completion
        keep = set(r.scored if score_only else range(len(r.completion)))
        ids.append(seq + [pad] * (n - len(seq)))
        mask.append([1] * len(seq) + [0] * (n - len(seq)))
        labels.append([-100] * len(r.prompt) + [c if j in keep else -100 for j, c in enumerate(r.completion)]
                      + [-100] * (n - len(seq)))
    return torch.tensor(ids), torch.tensor(mask), torch.tensor(labels)


def loss_of(model, ids, mask, labels):
    import torch.nn.functional as F

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def tuned_loss(model, ids, labels):
    """loss_of without the attention mask and the KV cache: batch() pads on the right, so under the causal mask no
    real token attends to a pad and the scored positions' logits are the same (to the float; the pads' own logits,
    never scored, differ). ~10% of a fine-tune's step on this model: transformers builds no padding mask. Pretraining
    keeps loss_of (its source is in the base's cache key: a cached base stays the base it was)."""
    import torch.nn.functional as F

    logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def eval_loss(model, rows: list[Row], pad: int, score_only: bool = True) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), 128):
            ids, mask, labels = batch(rows[i:i + 128], pad, score_only=score_only)
            n = int((labels[:, 1:] != -100).sum())
            total += float(tuned_loss(model, ids, labels)) * n
            count += n
    return total / count


# ------------------------------------------------------------------ the base model (cached)


PRETRAINING = ("__init__", "ids", "statement", "question", "pretrain_rows")  # the World a base is made from


def base_code() -> str:
    """The code that makes the world's facts and pretrains on them: a base cached by an older version of it is not
    the base this version would make, and must not be reused. World.task (the splits, the eval sets) is not in it:
    a base does not depend on how its fine-tuning tasks are drawn."""
    import inspect

    return "".join(inspect.getsource(getattr(World, m)) for m in PRETRAINING) + repr(ATTRIBUTES) + "".join(
        inspect.getsource(f) for f in (batch, loss_of, base_model))


def base_key(world: World, mode: Mode) -> str:
    made = {k: v for k, v in asdict(mode).items() if k in BASE_FIELDS}  # the grid does not change the base
    # and the libraries that train it: a base pretrained under another torch or transformers is not assumed the same
    # (the 7 December run under torch 2.14.1 gave other figures than the 6 December runs under 2.13.0; not isolated)
    import torch
    import transformers

    libs = [torch.__version__, transformers.__version__]
    return hashlib.sha256(json.dumps([made, sorted(world.vocab.items()), SEED, base_code(), libs]).encode()
                          ).hexdigest()[:12]


def base_model(world: World, mode: Mode, cache: Path, log) -> Path:
    key = base_key(world, mode)
    out = cache / f"base-{key}"
    if (out / "done.json").exists():
        known = json.loads((out / "done.json").read_text())["known_question_loss"]
        log(f"base model: cached in {out}; value loss on known questions {known:.3f}{_unknowing(known, mode)}")
        return out
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    t0 = time.time()
    torch.manual_seed(SEED)
    cfg = LlamaConfig(vocab_size=len(world.vocab), hidden_size=mode.hidden, intermediate_size=4 * mode.hidden,
                      num_hidden_layers=mode.layers, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=mode.hidden // 4, max_position_embeddings=64, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg)
    rows = world.pretrain_rows()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / mode.pretrain_steps)))
    rng = random.Random(SEED)
    model.train()
    for step in range(mode.pretrain_steps):
        ids, mask, labels = batch(rng.sample(rows, 64), 0)
        labels[:, 1:][mask[:, 1:] == 1] = ids[:, 1:][mask[:, 1:] == 1]  # pretraining: every token
        loss = loss_of(model, ids, mask, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad()
        if step % 500 == 0 or step == mode.pretrain_steps - 1:
            log(f"  pretrain step {step}: loss {loss.item():.3f}")
    qa = [world.question(e, a) for e in world.known for a in world.attrs]
    known_loss = eval_loss(model, qa, 0)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    (out / "vocab.json").write_text(json.dumps(world.vocab))
    (out / "done.json").write_text(json.dumps({"known_question_loss": known_loss, "seconds": time.time() - t0}))
    log(f"base model: pretrained in {time.time() - t0:.0f} s; value loss on known questions {known_loss:.3f} "
        f"(chance {math.log(len(ATTRIBUTES['city'][2])):.2f}){_unknowing(known_loss, mode)} → {out}")
    return out


def _unknowing(known_loss: float, mode: Mode) -> str:
    """A warning when the base does not know the facts of its known entities: the format task asks for them."""
    if known_loss <= KNOWN_ENOUGH:
        return ""
    if mode.pretrain_steps < MODES["full"].pretrain_steps:
        return f" (above {KNOWN_ENOUGH}: expected of a short pretraining; the figures are a smoke test)"
    return (f"\nWARNING: the base does not know its known entities' facts (above {KNOWN_ENOUGH}): the format task's "
            "figures say little; pretrain longer (Mode.pretrain_steps)")


# ------------------------------------------------------------------ one fine-tune


@dataclass(frozen=True)
class Trial:
    targets: str  # a rankwise target set
    r: int
    alpha: float
    lr: float
    epochs: float
    coupling: str = ""  # "2r" | "fixed" | "advised"
    matched: bool = False  # attention-only at all-linear's parameter count
    loraplus: float | None = None  # LoRA+ ratio (B at lr × it); None: the config's (the advice's)


def finetune(base, spec, trial: Trial, cfg, train: list[Row], held: dict[str, list[Row]],
             val_rows: list[Row] = ()) -> dict[str, float]:
    """Eval loss of each eval set after LoRA training with the trial's knobs and the config's other settings,
    and, under VAL, the validation loss of the adapter the run keeps (what a user picking among runs sees).

    With data.val_path (set by run_task where the advice says to give one), `val_rows` are the validation
    rows and nothing is held out of training; with data.val_ratio, that share of the rows is held out as
    the run's validation split; either is
    evaluated at the interval the worker gives its Trainer (advisor/cadence.py: train.evals_per_epoch against the
    epoch's steps, else eval_steps, else save_steps) and, as the Trainer does, not again at the end (until 7 December
    2026 the bench evaluated every eval_steps or save_steps, 100 steps, and at the end: 6 evaluations of a
    knowledge run where the worker makes 40, so the stop rule fired later and kept coarser checkpoints);
    with train.stop_on overfitting, the run stops where the doctor's rule (advisor/doctor.overfitting, the one the
    worker's Checkup applies) fires on the run's log: the eval loss rose OVERFIT_RISES times in a row, EVAL_RISE above
    its best, its best at least an epoch back (a quarter of the run at most), while the train loss the Trainer logs
    every logging_steps (the mean over those steps) fell; and it keeps the best evaluation's adapter. (Until 7 December 2026 the bench applied the eval-loss half of the rule only: with
    40 evaluations a run, not 6, it stopped runs early on the validation loss's wobble while the train loss was not
    falling, which the worker does not.)"""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import get_scheduler

    from rankwise.advisor import cadence
    from rankwise.advisor.doctor import overfitting
    from rankwise.advisor.runlog import Point, Run

    t = cfg.train
    val: list[Row] = list(val_rows) if cfg.data.val_path else []
    if cfg.data.val_ratio:
        rows = list(train)
        random.Random(t.seed).shuffle(rows)
        n_val = max(1, round(cfg.data.val_ratio * len(rows)))
        val, train = rows[:n_val], rows[n_val:]
    model = copy.deepcopy(base)
    torch.manual_seed(t.seed)
    lora = LoraConfig(r=trial.r, lora_alpha=trial.alpha, lora_dropout=cfg.lora.dropout, bias=cfg.lora.bias,
                      target_modules=spec.target_set(trial.targets), use_rslora=cfg.lora.use_rslora,
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    bs = t.micro_batch * t.grad_accum
    per_epoch = cadence.steps_per_epoch(len(train), t.micro_batch, t.grad_accum)  # HF's, as the worker's
    total = max(1, math.ceil(per_epoch * trial.epochs))
    warm = t.warmup_steps if t.warmup_steps is not None else math.ceil(t.warmup_ratio * total)
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: the same AdamW update in one kernel, ~2 ms a step less than the per-tensor loop the Trainer runs
    # on the CPU (5% of a trial); it differs from it only in float rounding
    ratio = cfg.lora.loraplus_lr_ratio if trial.loraplus is None else trial.loraplus
    if ratio and ratio != 1:  # LoRA+: the B matrices at lr × ratio, as the worker builds it (peft's helper)
        from peft.optimizers import create_loraplus_optimizer

        opt = create_loraplus_optimizer(model, torch.optim.AdamW, lr=trial.lr, loraplus_lr_ratio=ratio,
                                        loraplus_weight_decay=t.weight_decay, fused=True)
    else:
        opt = torch.optim.AdamW(params, lr=trial.lr, weight_decay=t.weight_decay, fused=True)
    names = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}  # as trainer/worker.py
    sched = get_scheduler(names[t.scheduler], opt, num_warmup_steps=warm, num_training_steps=total)
    every = cadence.resolve(t, per_epoch).eval_steps
    rng = random.Random(t.seed)
    order: list[Row] = []
    evals: list[tuple[int, float, dict]] = []  # (step, val loss, adapter state)
    log: list[Point] = []  # the train loss as the Trainer logs it: every logging_steps, the mean over them
    since: list[float] = []
    kept = math.inf  # the val loss the run reports last: its best evaluation's where it stopped, else its last one's
    stopped = False
    model.train()
    for step in range(1, total + 1):
        if len(order) < bs:
            more = list(train)
            rng.shuffle(more)
            order += more
        rows, order = order[:bs], order[bs:]
        ids, _, labels = batch(rows, 0)
        loss = tuned_loss(model, ids, labels)
        loss.backward()
        if t.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        opt.step(), sched.step(), opt.zero_grad()
        since.append(loss.item())
        if step % t.logging_steps == 0:
            log.append(Point(step, sum(since) / len(since), None, None, None, None))
            since = []
        if val and step % every == 0:
            v = eval_loss(model, val, 0, score_only=False)
            model.train()
            evals.append((step, v, {k: x.detach().clone() for k, x in model.named_parameters() if "lora_" in k}))
            if "overfitting" in t.stop_on and overfitting(Run(points=tuple(log), evals=tuple((s, x) for s, x, _ in evals),
                                                              max_steps=total, steps_per_epoch=per_epoch)):
                _, kept, best = min(evals, key=lambda e: e[1])
                model.load_state_dict(best, strict=False)  # stopped: the best checkpoint is kept
                stopped = True
                break
            kept = v
    out = {k: eval_loss(model, rows, 0) for k, rows in held.items()} | {VAL: kept, EVALS: len(evals),
                                                                       STOPPED: float(stopped)}
    return {k: v if math.isfinite(v) else float("inf") for k, v in out.items()}


VAL_PATH = "<the task's validation rows>"  # data.val_path where the advice says to give one (never opened)
VAL = "_val"  # finetune's key for the kept adapter's validation loss (not an eval set)
EVALS = "_evals"  # finetune's key for how many evaluations the run made
STOPPED = "_stopped"  # and for whether the overfitting rule stopped it (1.0) or it ran its length (0.0)
_POOL_STATE: dict = {}  # a worker process's base model, spec and rows (set once, by _pool_init)


def _pool_init(folder: str, train: list[Row], held: dict[str, list[Row]], val: list[Row]) -> None:
    import torch
    from transformers import LlamaForCausalLM

    from rankwise.advisor.model import load_model
    from rankwise.trainer.merge import quiet_libraries

    quiet_libraries()  # a worker's library chatter (bitsandbytes' missing `kernels`, progress bars) stays out
    torch.set_num_threads(1)
    _POOL_STATE.update(base=LlamaForCausalLM.from_pretrained(folder), spec=load_model(folder), train=train,
                       held=held, val=val)


def _pool_trial(job):
    cfg, t = job
    st = _POOL_STATE
    return t, finetune(st["base"], st["spec"], t, cfg, st["train"], st["held"], st["val"])


def run_trials(todo: list, base, spec, train: list[Row], held: dict[str, list[Row]], val: list[Row], workers: int):
    """(trial, eval losses) for each (cfg, trial) of `todo`, in order. With workers > 1 the trials run in
    that many spawned processes of one torch thread each, each loading the base from its folder: a trial
    depends only on its own seed, so the figures are the same as in one process."""
    if workers <= 1:
        for cfg, t in todo:
            yield t, finetune(base, spec, t, cfg, train, held, val)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that has run torch
    with ctx.Pool(workers, initializer=_pool_init, initargs=(str(base.name_or_path), train, held, val)) as pool:
        yield from pool.imap(_pool_trial, todo)


# ------------------------------------------------------------------ the advice and the grid


ADVISE_AT = """
import inspect, json, sys
from rankwise.advisor import hardware
from rankwise.advisor.model import load_model
from rankwise.advisor.recommend import advise
folder, task, seq, data = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
hw = hardware.resolve(None, None, None)
known = inspect.signature(advise).parameters  # an older recommender takes fewer of the data's figures
a = advise(load_model(folder), hw, task, seq_len=seq, **{k: v for k, v in data.items() if k in known})
print(json.dumps({"config": a.config.model_dump(mode="json"), "first_lrs": getattr(a, "first_lrs", []),
                  "reasons": a.reasons, "to_supply": getattr(a, "to_supply", None)}))
"""


def data_inputs(train: list[Row]) -> dict:
    """What `rankwise advise --dataset` hands the recommender about these rows (advisor/dataset.py advice_inputs):
    the row count, the median row length and the share of it the loss reads (the completions), here counted in
    the world's own tokens, which is what the scan's tokenizer count would give."""
    lengths = sorted(len(r.prompt) + len(r.completion) for r in train)
    return dict(dataset_rows=len(train), median_tokens=lengths[len(lengths) // 2],
                trained_share=round(sum(len(r.completion) for r in train) / sum(lengths), 4))


def asks_val_path(got: dict) -> bool:
    """Whether an advice (as `advise --json` writes it) says to give data.val_path: its `to_supply`, or for an
    advice older than that key, its validation reason naming the field."""
    if got.get("to_supply") is not None:
        return "data.val_path" in got["to_supply"]
    return "data.val_path" in got.get("reasons", {}).get("data.val_ratio", "")


def advised(spec, task: str, data: dict, seq: int, source: str, cache: Path):
    """The advised RunConfig for a task, the learning-rate grid the advice says to sweep (empty: none) and
    whether it says to give data.val_path (run_task then does), by `source`:
    - "now": rankwise's recommender in this process, as `rankwise advise --json` computes it
      (hardware as probed, the task's sequence length, the data's figures as `advise --dataset` reads them);
    - "json:FILE": the `config` of a saved `rankwise advise --json` output;
    - "git:REV": the same call to the recommender of commit REV (its advisor/ exported with git
      archive into the cache and imported in a subprocess in place of the installed one)."""
    import subprocess

    from rankwise.advisor.config import RunConfig

    if source == "now":
        from rankwise.advisor import hardware
        from rankwise.advisor.recommend import advise

        hw = hardware.resolve(None, None, None)  # what `rankwise advise` uses without planning flags
        a = advise(spec, hw, TASKS[task], seq_len=seq, **data)
        return a.config, list(a.first_lrs), "data.val_path" in a.to_supply
    if source.startswith("json:"):
        saved = json.loads(Path(source[5:]).read_text())
        return RunConfig.model_validate(saved["config"]), list(saved.get("first_lrs", [])), asks_val_path(saved)
    repo = Path(__file__).resolve().parent.parent
    sha = subprocess.run(["git", "rev-parse", source[4:]], cwd=repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    root = cache / f"advisor-{sha[:12]}"
    if not (root / "rankwise" / "__init__.py").exists():
        (root / "rankwise").mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(["git", "archive", sha, "advisor"], cwd=repo, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root / "rankwise")], input=tar, check=True)
        (root / "rankwise" / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=str(root))  # found before the editable install's finder
    done = subprocess.run([sys.executable, "-c", ADVISE_AT, spec.name, TASKS[task], str(seq), json.dumps(data)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"advice at {source} failed:\n{done.stderr[-2000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return RunConfig.model_validate(got["config"]), list(got["first_lrs"]), asks_val_path(got)


def enough_to_validate(val: list[Row], extraction: list[Row], per_entity: int) -> tuple[list[Row], list[Row]]:
    """(validation rows, extraction rows) with as many questions as the advice asks a validation set to hold
    (recommend.VAL_ROWS, a split's floor, which its data.val_path note names too): whole entities move from the
    extraction set (its rows go entity by entity) until the validation rows reach it, and the extraction set keeps
    half the held-out entities at least. World.task gives a fifth of them (its source is in the base's cache key,
    so the split is grown here rather than there)."""
    from rankwise.advisor.recommend import VAL_ROWS

    entities = (len(val) + len(extraction)) // per_entity
    want = min(math.ceil(VAL_ROWS / per_entity), entities // 2) * per_entity
    moved = max(0, want - len(val))
    return val + extraction[:moved], extraction[moved:]


def grid(spec, mode: Mode, lrs: tuple[float, ...]) -> list[Trial]:
    per_all, per_att = spec.lora_params("all-linear", 1), spec.lora_params("standard", 1)
    out = []
    for r in mode.ranks:
        shapes = [("all-linear", r, False), ("standard", r, False),
                  ("standard", max(1, round(r * per_all / per_att)), True)]
        for targets, rr, matched in shapes:
            for coupling in ("2r", "fixed"):
                alpha = 2.0 * rr if coupling == "2r" else mode.alpha_fixed
                for ep in mode.epochs:
                    out += [Trial(targets, rr, alpha, lr, ep, coupling, matched) for lr in lrs]
    return out


def condition(t: Trial) -> tuple:
    return (t.targets, t.r, t.coupling, t.epochs, t.matched)


def best_per_condition(results: dict[Trial, float]) -> dict[tuple, tuple[Trial, float]]:
    best: dict[tuple, tuple[Trial, float]] = {}
    for t, v in results.items():
        k = condition(t)
        if k not in best or v < best[k][1]:
            best[k] = (t, v)
    return best


def describe(t: Trial) -> str:
    return f"{t.targets} r={t.r} α={t.alpha:g} lr={t.lr:g} ep={t.epochs:g}" + (
        f" lora+={t.loraplus:g}" if t.loraplus is not None else "")


def as_trial(cfg, coupling: str = "advised") -> Trial:
    targets = cfg.lora.target_modules if isinstance(cfg.lora.target_modules, str) else ",".join(cfg.lora.target_modules)
    return Trial(targets, cfg.lora.r, cfg.lora.alpha_value, cfg.train.lr, cfg.train.epochs, coupling)


def run_task(task: str, world: World, mode: Mode, base, spec, sources: list[str], cache: Path, log,
             workers: int = 1, redraws: int = 0, study: tuple | None = None) -> list[dict]:
    """The grid and every advice's config (each also with its lr swept) on one task; one result per
    eval set (metric). Settings the grid does not sweep (dropout, batch, schedule, validation
    split, ...) come from the first advice. With study (alpha_study or loraplus_study, draws), that study instead."""
    train, held, val = world.task(task, mode)
    seq = max(len(r.prompt) + len(r.completion) for r in train)
    advices = {}
    from rankwise.advisor.config import with_values

    for src in sources:
        cfg, first_lrs, wants_val_path = advised(spec, task, data_inputs(train), seq, src, cache)
        if SEED:  # another draw: the trials' data order, split and initialisation move with it
            cfg = with_values(cfg, {"train.seed": cfg.train.seed + SEED})
        if val and cfg.data.val_ratio and wants_val_path:  # the advice says: validate on these
            cfg = with_values(cfg, {"data.val_ratio": 0.0, "data.val_path": VAL_PATH})
            if src == sources[0]:
                val, held["extraction"] = enough_to_validate(val, held["extraction"], len(world.attrs))
        advices[src] = (cfg, as_trial(cfg, f"advised {src}"), first_lrs)
        sizes = ", ".join(f"{k} {len(v)}" for k, v in held.items())
        log(f"[{task}] {len(train)} train rows, eval rows: {sizes}; advice {src} (task {TASKS[task]}): "
            f"{describe(advices[src][1])} dropout={cfg.lora.dropout:g} "
            + (f"val_path: {len(val)} questions about trained facts " if cfg.data.val_path else
               f"val_ratio={cfg.data.val_ratio:g} ")
            + f"batch={cfg.train.micro_batch * cfg.train.grad_accum} rslora={cfg.lora.use_rslora}"
            + (f"; its lr sweep {', '.join(f'{x:g}' for x in first_lrs)}" if first_lrs else ""))
    untuned = {k: eval_loss(base, rows, 0) for k, rows in held.items()}
    log(f"  [{task}] the base without an adapter: " + ", ".join(f"{k} {v:.3f}" for k, v in untuned.items())
        + f" (chance {math.log(16):.3f})")
    first = advices[sources[0]][0]
    if study:
        return study[0](first, advices[sources[0]][1], mode, base, spec, train, held, val, workers, study[1], log)
    lrs = tuple(sorted(set(mode.lrs)))
    jobs = [(first, t) for t in grid(spec, mode, lrs)]
    for cfg, adv, first_lrs in advices.values():
        jobs += [(cfg, replace(adv, lr=lr)) for lr in sorted(set(lrs) | {adv.lr} | set(first_lrs))]
    todo, same = distinct_runs(jobs)
    losses: dict[Trial, dict[str, float]] = {}
    t0 = time.time()
    stopped = 0
    for i, (t, loss) in enumerate(run_trials(todo, base, spec, train, held, val, workers)):
        losses |= {each: loss for each in same[t]}
        stopped += int(loss[STOPPED])
        if (i + 1) % 20 == 0 or i + 1 == len(todo):
            log(f"  [{task}] {i + 1}/{len(todo)} runs, {time.time() - t0:.0f} s")
    seconds = time.time() - t0
    out = []
    for metric in held:
        results = {t: v[metric] for t, v in losses.items()}
        best = best_per_condition(results)
        grid_best = min(v for k, (t, v) in best.items() if not k[2].startswith("advised"))
        rows = [{"source": src, "advice": adv, "loss": results[adv], "best_lr": best[condition(adv)],
                 "followed": followed(adv, first_lrs, losses, metric)}
                for src, (cfg, adv, first_lrs) in advices.items()]
        out.append({"task": metric, "advices": rows, "results": results, "best": best,
                    "grid_best": min([grid_best] + [r["best_lr"][1] for r in rows]),
                    "per_all": spec.lora_params("all-linear", 1), "per_att": spec.lora_params("standard", 1),
                    "untuned": untuned[metric], "seconds": seconds, "runs": len(todo), "stopped": stopped, "lrs": lrs,
                    "rows": len(train),
                    "held": len(held[metric])})
    if redraws and advices[sources[0]][2]:
        redraw(out, advices[sources[0]], first, redraws, base, spec, train, held, val, workers, log)
    return out


REDRAW_SEED = 1000  # a redraw k trains with train.seed + k * REDRAW_SEED: another split, init, order and dropout


def redraw(out: list[dict], advice: tuple, first, n: int, base, spec, train, held, val, workers: int, log) -> None:
    """The followed advice against the grid's best configs on n more draws of the trials (same world and base): each
    draw runs the advice's sweep and picks its rate on the validation loss as `followed` does, and runs each metric's
    CONTENDERS best configs of the first draw. One draw's grid best is the least of ~100 noisy runs, so it is low by
    luck as well as by merit (the winner's curse); on fresh draws the contenders are scored without being picked
    again, and the best of their means stands for the grid's best config. Adds o["redraws"]: {"followed": [(lr,
    loss)], "contenders": {trial: [loss]}}, a value a draw, the first draw's included (the means leave it out)."""
    from rankwise.advisor.config import with_values

    cfg, adv, first_lrs = advice
    contenders = {o["task"]: contenders_of(o) for o in out}
    # (config, trial) of one draw: the advice's sweep, then the contenders of every metric (the grid's config, the
    # advice's own at the current advice's rates: the same config); a contender that trains what a sweep run or another
    # contender trains is read from that run
    each = [(cfg, replace(adv, lr=x)) for x in first_lrs]
    ran = {trains(t): t for _, t in each}
    for t in (t for ts in contenders.values() for t in ts):
        if trains(t) not in ran:
            ran[trains(t)] = t
            each.append((first, t))
    trials = [t for _, t in each]
    jobs = [(with_values(c, {"train.seed": c.train.seed + k * REDRAW_SEED}), t)
            for k in range(1, n + 1) for c, t in each]
    t0 = time.time()
    got = [loss for _, loss in run_trials(jobs, base, spec, train, held, val, workers)]
    log(f"  redraws: {len(jobs)} runs in {time.time() - t0:.0f} s")
    draws = [dict(zip(trials, got[i:i + len(trials)])) for i in range(0, len(got), len(trials))]  # {trial: losses}
    for o in out:
        m, f = o["task"], o["advices"][0]["followed"]
        picks = [f] + [followed(adv, first_lrs, d, m) for d in draws]
        o["redraws"] = {"followed": [(p[0].lr, p[1]) if p else (math.nan, math.nan) for p in picks],
                        "contenders": {t: [o["results"][t]] + [d[ran[trains(t)]][m] for d in draws]
                                       for t in contenders[m]}}


CONTENDERS = 3  # a metric's best configs of the first draw that a redraw trains again


def contenders_of(o: dict) -> list[Trial]:
    """A metric's CONTENDERS best configs of the first draw, best first: each condition's best rate, over the grid and
    the current advice's choices at other rates, the pool the regret's best is taken from (another revision's advice
    trains with its own config, so it is left out)."""
    grid = sorted((tv for k, tv in o["best"].items() if not k[2].startswith("advised") or k[2] == "advised now"),
                  key=lambda tv: tv[1])
    # one config can be two conditions' best (at r=16 α=2r is α=32; the advised config at a grid rate is that grid
    # trial): it contends once
    kept: dict[tuple, Trial] = {}
    for t, _ in grid:
        kept.setdefault(trains(t), t)
    return list(kept.values())[:CONTENDERS]


def trains(t: Trial) -> tuple:
    """What a trial trains (its coupling is a label): trials equal in it are one run."""
    return t.targets, t.r, t.alpha, t.lr, t.epochs, t.loraplus


def fresh_mean(losses: list[float]) -> float:
    """The mean of a config's losses over the fresh draws: the first draw is where the contenders were picked, so it
    leaves every mean."""
    return statistics.fmean(losses[1:])


def redraw_verdict(d: dict) -> tuple[float, Trial, float]:
    """(the followed advice's mean, the best contender, its mean) over the fresh draws."""
    fm = fresh_mean([v for _, v in d["followed"]])
    best, bm = min(((t, fresh_mean(v)) for t, v in d["contenders"].items()), key=lambda tv: tv[1])
    return fm, best, bm


def regret_error(d: dict, best: Trial, bm: float) -> float | None:
    """The standard error of the regret of the means against `best` (mean `bm`): of the per-draw differences between
    the advice followed and that contender, relative to its mean. A draw is the same split, initialisation and order
    for every config (train.seed + k * REDRAW_SEED), so the differences are paired and the draw's own luck, shared by
    both, drops out. None under two fresh draws."""
    se = paired_error([f - c for (_, f), c in zip(d["followed"][1:], d["contenders"][best][1:])])
    return None if se is None else se / bm


def paired_error(diffs: list[float]) -> float | None:
    """The standard error of the mean of per-draw differences between two configs trained on the same draws; None
    under two draws or where a run diverged."""
    if len(diffs) < 2 or not all(map(math.isfinite, diffs)):
        return None
    return statistics.stdev(diffs) / math.sqrt(len(diffs))


def alpha_study(first, adv: Trial, mode: Mode, base, spec, train, held, val, workers: int, draws: int,
                log) -> list[dict]:
    """The advice's α against the other coupling at each of the mode's ranks, on `draws` paired draws (draw k trains
    with train.seed + k * REDRAW_SEED, as a redraw): all-linear at the advice's epochs, α = mode.alpha_fixed and
    α = 2r, each over the mode's rates (α = 2r below the fixed α also one doubling above the top, above it one halving
    below the bottom: the coupling moves its optimum by sqrt(32/α)), each compared at the rate with the lowest mean
    over the draws. The grid's one-draw comparison of couplings is a minimum over noisy runs on each side; this is the
    same question with the draw's luck paired out.

    Under Adam a step moves A and B by about the rate whatever the scale α/r, so the scale only sets how fast B·A
    moves through B against A: written with the scale folded into B, a LoRA at α/r is one at scale 1 whose B learns
    α/r times faster than its A (a LoRA+ ratio, Hayou et al. 2024). α = 2r keeps that ratio at 2 at every rank;
    α = 32 makes it 32/r: 8 at r=4, 1 at r=32, 0.5 at r=64. One result per eval set (`paired_study`)."""
    lrs = tuple(sorted(set(mode.lrs)))
    arms = []
    for r in mode.ranks:
        for coupling, alpha in (("fixed", mode.alpha_fixed), ("2r", 2.0 * r)):
            if coupling == "2r" and alpha == mode.alpha_fixed:
                continue  # the same run
            rates = ((float(f"{lrs[0] / 2:.2g}"),) if alpha > mode.alpha_fixed else ()) + lrs + (
                (float(f"{lrs[-1] * 2:.2g}"),) if alpha < mode.alpha_fixed else ())
            arms += [Trial("all-linear", r, alpha, lr, adv.epochs, coupling) for lr in rates]
    fixed = f"α = {mode.alpha_fixed:g}"
    return paired_study(first, arms, {"fixed": fixed, "2r": "α = 2r"}, base, spec, train, held, val, workers, draws,
                        log, f"α study, {{task}}: all-linear, {adv.epochs:g} epochs, {draws} paired draws, each coupling "
                             f"at the rate with its lowest mean (the advice: r={adv.r} α={adv.alpha:g})")


LORAPLUS_RATIOS = (4.0, 16.0)  # against none: Hayou et al. 2024 suggest 2^4 for LLaMA-class models


def loraplus_study(first, adv: Trial, mode: Mode, base, spec, train, held, val, workers: int, draws: int,
                   log, ratios: tuple[float, ...] = LORAPLUS_RATIOS) -> list[dict]:
    """The advised config (its targets, rank, α and epochs) without LoRA+ and with each of `ratios`, each over
    the mode's rates and compared at the rate with its lowest mean over `draws` paired draws (as `alpha_study`).

    Why the rates move: with B at zero, the first steps change B·A through B alone, so a ratio λ makes the start λ
    times faster at the same rate; if what matters is B's rate, λ's optimum sits at the plain optimum / λ, and if it
    is A's, at the plain one. So a ratio is tried over the mode's rates and halvings below them down to the bottom
    rate / λ (a ratio 16 drops the top rate: B at 16 × the top rate). The α study's reading (the scale α/r is a LoRA+
    ratio under Adam; α = 32 at r=32 is ratio 1) says the advice at r ≥ 32 runs B at no faster than A."""
    lrs = tuple(sorted(set(mode.lrs)))
    arms = [Trial(adv.targets, adv.r, adv.alpha, lr, adv.epochs, "plain") for lr in lrs]
    for ratio in ratios:
        below = [float(f"{lrs[0] / 2 ** k:.2g}") for k in range(1, int(math.log2(ratio) // 2) + 1)]
        top = lrs[:-1] if ratio >= 16 else lrs
        arms += [Trial(adv.targets, adv.r, adv.alpha, lr, adv.epochs, f"lora+{ratio:g}", loraplus=ratio)
                 for lr in sorted(below) + list(top)]
    names = {"plain": "no LoRA+"} | {f"lora+{x:g}": f"LoRA+ {x:g}" for x in ratios}
    return paired_study(first, arms, names, base, spec, train, held, val, workers, draws, log,
                        f"LoRA+ study, {{task}}: the advised {adv.targets} r={adv.r} α={adv.alpha:g} at "
                        f"{adv.epochs:g} epochs, {draws} paired draws, each at the rate with its lowest mean")


def paired_study(first, arms: list[Trial], names: dict[str, str], base, spec, train, held, val, workers: int,
                 draws: int, log, title: str) -> list[dict]:
    """Every arm on `draws` paired draws (draw k trains with train.seed + k * REDRAW_SEED, as a redraw); per eval set,
    at each rank each arm kind (Trial.coupling, a key of `names`; the first is the reference) at the rate with the
    lowest mean. One result per eval set: {"task", "draws", "title", "names", "ranks": {r: {kind: (lr, mean,
    [loss a draw], at the edge of its rates)}}}."""
    from rankwise.advisor.config import with_values

    jobs = [(with_values(first, {"train.seed": first.train.seed + k * REDRAW_SEED}), t)
            for k in range(draws) for t in arms]
    t0 = time.time()
    got = [loss for _, loss in run_trials(jobs, base, spec, train, held, val, workers)]
    log(f"  {title.split(',')[0]}: {len(jobs)} runs in {time.time() - t0:.0f} s")
    by_draw = [dict(zip(arms, got[i:i + len(arms)])) for i in range(0, len(got), len(arms))]  # {trial: losses}
    out = []
    for metric in held:
        ranks: dict[int, dict] = {}
        for r in dict.fromkeys(t.r for t in arms):
            for kind in names:
                mine = [t for t in arms if t.r == r and t.coupling == kind]
                if not mine:
                    continue
                each = {t: [d[t][metric] for d in by_draw] for t in mine}
                t = min(mine, key=lambda t: statistics.fmean(each[t]))
                ranks.setdefault(r, {})[kind] = (t.lr, statistics.fmean(each[t]), each[t],
                                                 t.lr in (mine[0].lr, mine[-1].lr))
        out.append({"task": metric, "draws": draws, "ranks": ranks, "names": names,
                    "title": title.format(task=metric)})
    return out


def study_report(out: list[dict]) -> None:
    """Each rank's arms at their best mean rate, and each arm against the first (the reference), paired by draw."""
    from rankwise.advisor.coupling import lr_text

    for o in out:
        names = o["names"]
        ref, *others = names
        print(f"\n{o['title']}")
        print(f"  {'r':>4} " + " ".join(f"{names[k] + ' (lr)':>22}" for k in names)
              + "".join(f" {names[ref] + ' − ' + names[k] + ' ± SE':>26}  verdict" for k in others))
        for r, c in o["ranks"].items():
            cells = [f"{c[k][1]:.3f} ({lr_text(c[k][0])}{', edge' if c[k][3] else ''})" if k in c else "(same run)"
                     for k in names]
            line = f"  {r:>4} " + " ".join(f"{x:>22}" for x in cells)
            for k in others:
                if ref not in c or k not in c:
                    continue
                m = statistics.fmean(d := [x - y for x, y in zip(c[ref][2], c[k][2])])
                se = paired_error(d)
                ahead = f"{names[ref]} ahead" if m < 0 else f"{names[k]} ahead"
                who = "-" if se is None else ahead if abs(m) > 2 * se else "cannot tell"
                line += f" {m:+17.3f} ± {math.nan if se is None else se:.3f}  {who}"
            print(line)
    print("(difference: the first arm's mean minus the other's, the paired draws' standard error beside it; ahead: by "
          "more than two standard errors; edge: the best mean is at the end of the rates tried)")


def distinct_runs(jobs: list) -> tuple[list, dict[Trial, list[Trial]]]:
    """Each (cfg, trial) of `jobs` that trains something new, in order, and for each the trials it stands for:
    trials that train the same thing (at r=16, α = 2r is α = 32; the advised config at a grid rate is that grid
    trial) share one run, with the config the first of them came with."""
    runs: dict[tuple, list[Trial]] = {}
    todo = []
    for cfg, t in jobs:
        key = (*trains(t), cfg.model_dump_json())
        if key not in runs:
            runs[key] = []
            todo.append((cfg, t))
        if t not in runs[key]:
            runs[key].append(t)
    return todo, {t: ts for (_, t), ts in zip(todo, runs.values())}


def followed(adv: Trial, first_lrs: list[float], losses: dict[Trial, dict[str, float]], metric: str):
    """The advice as a user follows it: where it gives a learning-rate sweep, the rate whose run keeps the
    lowest *validation* loss (the rows the advice's val_ratio holds out, or the val_path rows it says to give;
    never the eval sets); (trial, eval loss), or None when the advice gives no sweep or no validation rows."""
    if not first_lrs:
        return None
    runs = [replace(adv, lr=x) for x in first_lrs]
    pick = min(runs, key=lambda t: losses[t][VAL])
    return None if not math.isfinite(losses[pick][VAL]) else (pick, losses[pick][metric])


# ------------------------------------------------------------------ report


def regret(v: float, best: float) -> float:
    return (v - best) / best


def report(out: list[dict], mode: Mode) -> None:
    print("\nRegret of the advised config (eval loss vs the best of the grid and the advised configs; target ≤ 5%)")
    head = (f"{'task':<10} {'advice':<14} {'advised config':<40} {'loss':>6} {'best':>6} {'gap':>6} {'regret':>7} "
            f"{'followed':>9} {'lr swept':>9}  ≤5%")
    print(head)
    print("-" * len(head))
    for o in out:
        for a in o["advices"]:
            r1, r2 = regret(a["loss"], o["grid_best"]), regret(a["best_lr"][1], o["grid_best"])
            f = a["followed"]
            r3 = regret(f[1], o["grid_best"]) if f else None
            verdict = r3 if r3 is not None else r1  # the advice includes its sweep where it gives one
            print(f"{o['task']:<10} {a['source'][:14]:<14} {describe(a['advice']):<40} {a['loss']:>6.3f} "
                  f"{o['grid_best']:>6.3f} {a['loss'] - o['grid_best']:>6.3f} {r1:>7.1%} "
                  f"{f'{r3:.1%}' if f else '-':>9} {r2:>9.1%}  {'yes' if verdict <= 0.05 else 'no'}")
    print("(regret: the advised config at the advised lr; followed: where the advice gives a learning-rate sweep "
          "(a model narrower than its sources measured), the rate of that sweep whose run kept the lowest validation "
          "loss (the advice's val_ratio rows, or the val_path it says to give), and the verdict is on it; lr swept: "
          "the advice's other choices at the eval sets' best lr, an oracle; gap: loss - best in nats, which reads "
          "better than the regret where the best is near zero)")
    for o in out:
        for a in o["advices"]:
            if a["followed"]:
                print(f"  {o['task']}, advice {a['source']}: its sweep picked lr {a['followed'][0].lr:g} "
                      f"→ {a['followed'][1]:.3f}")
    if any("redraws" in o for o in out):
        print("\nRedraws (the same world and base, the trials drawn again: split, init, order, dropout): the advice "
              "followed (its sweep's pick on the validation loss each draw) and the first draw's best grid configs, "
              "each draw's eval loss; the means leave out the first draw, where the contenders were picked")
        for o in out:
            if "redraws" in o:
                d = o["redraws"]
                fm, best, bm = redraw_verdict(d)
                lrs = ",".join(f"{lr:g}" for lr, _ in d["followed"])
                print(f"  {o['task']:<10} {'followed (lr ' + lrs + ')':<44} "
                      + " ".join(f"{v:6.3f}" for _, v in d["followed"]) + f"   mean {fm:.3f}")
                for t, v in d["contenders"].items():
                    print(f"  {'':<10} {describe(t):<44} " + " ".join(f"{x:6.3f}" for x in v)
                          + f"   mean {fresh_mean(v):.3f}")
                r = regret(fm, bm)
                print(f"  {'':<10} regret of the means {r:.1%} against {describe(best)}  ≤5% {'yes' if r <= 0.05 else 'no'}")
                se = regret_error(d, best, bm)
                if se is not None:
                    n = len(d["followed"]) - 1
                    print(f"  {'':<10} ± {se:.1%}, the paired differences' standard error over {n} draws: "
                          + ("the draws cannot tell it from 5% (within two standard errors)" if abs(r - 0.05) < 2 * se
                             else f"{'within' if r <= 0.05 else 'beyond'} 5% by more than two standard errors"))
    for o in out:
        best = o["best"]
        winner = min(best.values(), key=lambda tv: tv[1])
        edge = winner[0].lr in (o["lrs"][0], o["lrs"][-1])
        print(f"\n[{o['task']}] {o['rows']} train rows, {o['held']} eval rows; {len(o['results'])} trials "
              f"({o['runs']} runs, {o['stopped']} stopped by the overfitting rule) in {o['seconds']:.0f} s; the base "
              f"without an adapter {o['untuned']:.3f}, chance {math.log(16):.3f}")
        print(f"  best: {describe(winner[0])} ({winner[0].coupling}) → {winner[1]:.3f}"
              f"{'  (its lr is at the edge of the sweep)' if edge else ''}")
        for a in o["advices"]:
            print(f"  advice {a['source']}: at its best lr {a['best_lr'][0].lr:g} → {a['best_lr'][1]:.3f}")
        print("  all-linear vs attention-only, same rank and matched parameters (best over lr, α, epochs):")
        for r in mode.ranks:
            matched_r = max(1, round(r * o["per_all"] / o["per_att"]))
            cells = []
            for targets, rr, matched, label in (("all-linear", r, False, "all-linear"), ("standard", r, False, "attention"),
                                                ("standard", matched_r, True, "attention")):
                c = [(t, v) for k, (t, v) in best.items() if k[0] == targets and k[1] == rr and k[4] == matched
                     and not k[2].startswith("advised")]
                t, v = min(c, key=lambda tv: tv[1])
                n = rr * (o["per_all"] if targets == "all-linear" else o["per_att"])
                cells.append(f"{label} r={rr} ({n:,}) {v:.3f}")
            print("    " + " | ".join(cells))
        print(f"  best lr by rank, all-linear (α=2r | α={mode.alpha_fixed:g} fixed), best epochs:")
        for r in mode.ranks:
            cells = []
            for coupling in ("2r", "fixed"):
                c = [(t, v) for k, (t, v) in best.items() if k[0] == "all-linear" and k[1] == r and k[2] == coupling
                     and not k[4]]
                t, v = min(c, key=lambda tv: tv[1])
                cells.append(f"lr {t.lr:g} ep {t.epochs:g} → {v:.3f}")
            print(f"    r={r:<3} " + " | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    global SEED
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small world, short pretraining, small grid (a few minutes)")
    size.add_argument("--wide", action="store_true", help="the full world on a base 128 wide (64 in full mode), "
                       "ranks 16-64 at 10 epochs: rank against width")
    p.add_argument("--threads", type=int, default=1, help="torch threads, at most 2 (default 1: on a shared, "
                   "loaded 2-core machine 2 threads ran steps ~10x slower)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="trials run at once, each in its own process of one thread (default: 2 where the "
                        "machine has 2 cores; the figures do not depend on it)")
    p.add_argument("--cache", help="where the pretrained base is kept (default $RANKWISE_BENCH_CACHE or "
                                   "<tmp>/rankwise-bench/advice_quality)")
    p.add_argument("--advice-from", action="append", default=[], metavar="REV",
                   help="also score the advice of git commit REV (e.g. the one before a recommender change); "
                        "repeatable")
    p.add_argument("--tasks", default="knowledge,format", help="comma list of tasks (default both)")
    p.add_argument("--ranks", help="all-linear ranks of the grid, e.g. 4,64 (default: the mode's)")
    p.add_argument("--epochs", help="epochs of the grid, e.g. 3,10 (default: the mode's)")
    p.add_argument("--lrs", help="learning rates swept per condition, e.g. 3e-3,1e-2 (default: the mode's)")
    p.add_argument("--redraws", type=int, default=0, metavar="N",
                   help="after the grid, run the advice followed and each eval set's best configs of the grid "
                        f"({CONTENDERS}) on N more draws of the trials (same world and base) and report the regret "
                        "of the means over those fresh draws (default 0)")
    p.add_argument("--alpha-study", type=int, default=0, metavar="N",
                   help="instead of the grid: at each of the grid's ranks, all-linear with α fixed against α = 2r, "
                        "each at its best mean rate over N paired draws, the difference with its standard error")
    p.add_argument("--loraplus-study", type=int, default=0, metavar="N",
                   help="instead of the grid: the advised config without LoRA+ and with ratios "
                        f"{', '.join(f'{x:g}' for x in LORAPLUS_RATIOS)}, each at its best mean rate over N paired "
                        "draws, the differences with their standard errors")
    p.add_argument("--loraplus-ratios", help="the LoRA+ study's ratios, e.g. 2,4 (default: "
                   f"{','.join(f'{x:g}' for x in LORAPLUS_RATIOS)})")
    p.add_argument("--seed", type=int, default=SEED,
                   help=f"the world's, the base model's and the trials' seed (default {SEED}: the figures in the "
                        "notes); another seed shows how much a conclusion depends on the draw")
    args = p.parse_args(argv)
    SEED = args.seed
    asked = [(k, n) for k, n in (("alpha", args.alpha_study), ("loraplus", args.loraplus_study)) if n]
    if len(asked) > 1 or (asked and args.redraws):
        p.error("--alpha-study, --loraplus-study and --redraws: one at a time")
    ratios = LORAPLUS_RATIOS
    if args.loraplus_ratios:
        try:
            ratios = tuple(float(x) for x in args.loraplus_ratios.split(","))
        except ValueError:
            ratios = ()
        if not ratios or min(ratios) <= 1:
            p.error(f"--loraplus-ratios {args.loraplus_ratios}: ratios above 1, comma separated (e.g. 2,4)")
    studies = {"alpha": alpha_study, "loraplus": functools.partial(loraplus_study, ratios=ratios)}
    study = (studies[asked[0][0]], asked[0][1]) if asked else None
    import torch

    torch.set_num_threads(max(1, min(args.threads, 2)))
    which = "quick" if args.quick else "wide" if args.wide else "full"
    mode = MODES[which]
    for name, kind in (("ranks", int), ("epochs", float), ("lrs", float)):
        if getattr(args, name):
            mode = replace(mode, **{name: tuple(kind(x) for x in getattr(args, name).split(","))})
    cache = Path(args.cache or os.environ.get("RANKWISE_BENCH_CACHE")
                 or Path(tempfile.gettempdir()) / "rankwise-bench" / "advice_quality")
    sources = ["now"] + [f"git:{rev}" for rev in args.advice_from]

    def log(msg: str) -> None:
        print(msg, flush=True)

    t0 = time.time()
    world = World(mode, seed=SEED)
    log(f"world: {len(world.known)} known and {len(world.new)} new entities, {len(world.attrs)} attributes "
        f"(16 values each), vocabulary {len(world.vocab)}; mode {which}")
    folder = base_model(world, mode, cache, log)
    from transformers import LlamaForCausalLM

    from rankwise.advisor.model import load_model
    from rankwise.trainer.merge import quiet_libraries

    quiet_libraries()  # as in the trial processes: no loading progress bar in the bench's output
    base = LlamaForCausalLM.from_pretrained(folder)
    spec = load_model(str(folder))
    jobs = max(1, args.jobs)
    out = [m for t in args.tasks.split(",")
           for m in run_task(t, world, mode, base, spec, sources, cache, log, workers=jobs, redraws=args.redraws,
                             study=study)]
    if study:
        study_report(out)
    else:
        report(out, mode)
    threads = 1 if jobs > 1 else torch.get_num_threads()  # a trial process runs one thread
    print(f"\nwall time {time.time() - t0:.0f} s ({jobs} trial process{'es' if jobs > 1 else ''} of "
          f"{threads} thread{'s' if threads > 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
