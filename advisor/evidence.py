"""The evidence behind the advice: sources, what each one says where, and which rule leans on which.

Data only. A `Claim` is one thing one source says, at one locator (section, table, figure), with
a short quote (at most two sentences). `verbatim` is True only where the words were checked
against the source; otherwise the quote is a paraphrase and is shown as one ("paraphrase: ...").
Reasons (advisor/recommend.py) and red flags (advisor/redflags.py) carry claim keys and a status:

  evidence                  a controlled comparison or a published recipe supports it
  guide-rule                the practitioner guide rankwise started from says so; no study measured it
  guide-rule-contradicted   the guide says so, and a published recipe or ablation contradicts it
  derived                   arithmetic from other values (the claims it uses are cited)
  unsourced                 nothing here supports it; said so rather than dressed up

The guide is the practitioner guide rankwise's first rule set came from (rank bands by task,
alpha = 2r, attention-only targets unless the task needs new knowledge, a lower learning rate for
QLoRA, four red flags); the repository never named it, so it is registered as such, without a URL.
"""
from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("evidence", "guide-rule", "guide-rule-contradicted", "derived", "unsourced")
KINDS = ("ablation", "recipe", "guide", "docs", "theory")


@dataclass(frozen=True)
class Source:
    key: str
    authors: str
    year: int | None  # None: not known
    title: str
    url: str | None
    kind: str  # ablation | recipe | guide | docs | theory (what the source mostly is)


@dataclass(frozen=True)
class Claim:
    key: str
    source: str  # Source.key
    locator: str  # section / table / figure
    quote: str  # at most two sentences
    verbatim: bool  # False: a paraphrase (shown as one)
    setting: str  # model, data, optimizer of the experiment or recipe
    kind: str  # ablation | recipe | guide | docs | theory

    def quoted(self) -> str:
        return f"\u201c{self.quote}\u201d" if self.verbatim else f"paraphrase: {self.quote}"


SOURCES: dict[str, Source] = {s.key: s for s in (
    Source("dettmers2023", "Dettmers, Pagnoni, Holtzman, Zettlemoyer", 2023,
           "QLoRA: Efficient Finetuning of Quantized LLMs", "https://arxiv.org/abs/2305.14314", "ablation"),
    Source("qlora-code", "Dettmers et al.", 2023, "artidoro/qlora (the paper's code and README)",
           "https://github.com/artidoro/qlora", "recipe"),
    Source("hu2021", "Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang, Chen", 2021,
           "LoRA: Low-Rank Adaptation of Large Language Models", "https://arxiv.org/abs/2106.09685", "ablation"),
    Source("biderman2024", "Biderman, Portes, Ortiz, Paul, Greengard, Jennings, King, Havens, Chiley, Frankle, "
                       "Blakeney, Cunningham", 2024, "LoRA Learns Less and Forgets Less",
           "https://arxiv.org/abs/2405.09673", "ablation"),
    Source("tml2025", "Schulman and Thinking Machines Lab", 2025, "LoRA Without Regret",
           "https://thinkingmachines.ai/blog/lora/", "ablation"),
    Source("tinker-cookbook", "Thinking Machines Lab", None,
           "tinker-cookbook: hyperparam_utils.get_lr (empirical LoRA learning rates) and the chat_sl SFT sweep results",
           "https://github.com/thinking-machines-lab/tinker-cookbook/blob/02face348b50f74bd3afbe4254ab520b03690946/"
           "tinker_cookbook/hyperparam_utils.py", "ablation"),
    Source("tinker-cookbook-formula", "Thinking Machines Lab", None,
           "tinker-cookbook: hyperparam_utils.get_lr, the formula-based version (LoRA rate scaled by hidden size)",
           "https://github.com/thinking-machines-lab/tinker-cookbook/blob/9dfcc3a2cf44432d621a01005073dc6d76a1e87a/"
           "tinker_cookbook/hyperparam_utils.py", "recipe"),
    Source("kalajdzievski2023", "Kalajdzievski", 2023, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA",
           "https://arxiv.org/abs/2312.03732", "theory"),
    Source("raschka2023", "Raschka", 2023, "Practical Tips for Finetuning LLMs Using LoRA (Low-Rank Adaptation)",
           "https://magazine.sebastianraschka.com/p/practical-tips-for-finetuning-llms", "ablation"),
    Source("unsloth-guide", "Unsloth", 2025, "LoRA fine-tuning Hyperparameters Guide",
           "https://unsloth.ai/docs/get-started/fine-tuning-llms-guide/lora-hyperparameters-guide", "guide"),
    Source("peft-docs", "Hugging Face", 2025, "PEFT documentation: LoRA (LoraConfig)",
           "https://huggingface.co/docs/peft/package_reference/lora", "docs"),
    Source("trl-docs", "Hugging Face", 2025, "TRL documentation: LoRA Without Regret",
           "https://huggingface.co/docs/trl/main/en/lora_without_regret", "recipe"),
    Source("meng2024", "Meng, Wang, Zhang", 2024, "PiSSA: Principal Singular Values and Singular Vectors Adaptation "
           "of Large Language Models", "https://arxiv.org/abs/2404.02948", "ablation"),
    Source("pissa-code", "Meng et al.", 2024, "GraphPKU/PiSSA (the paper's code and README)",
           "https://github.com/GraphPKU/PiSSA", "recipe"),
    Source("hayou2024", "Hayou, Ghosh, Yu", 2024, "LoRA+: Efficient Low Rank Adaptation of Large Models",
           "https://arxiv.org/abs/2402.12354", "ablation"),
    Source("li2023loftq", "Li, Yu, Liang, He, Karampatziakis, Chen, Zhao", 2023,
           "LoftQ: LoRA-Fine-Tuning-Aware Quantization for Large Language Models", "https://arxiv.org/abs/2310.08659",
           "ablation"),
    Source("buyukakyuz2024", "Büyükakyüz", 2024, "OLoRA: Orthonormal Low-Rank Adaptation of Large Language Models",
           "https://arxiv.org/abs/2406.01775", "ablation"),
    Source("paischer2024", "Paischer, Hauzenberger, Schmied, Alkin, Deisenroth, Hochreiter", 2024,
           "One Initialization to Rule them All: Fine-tuning via Explained Variance Adaptation",
           "https://arxiv.org/abs/2410.07170", "ablation"),
    Source("zhou2023", "Zhou, Liu, Xu, Iyer, Sun, Mao, Ma, Efrat, Yu, Yu, Zhang, Ghosh, Lewis, Zettlemoyer, Levy", 2023,
           "LIMA: Less Is More for Alignment", "https://arxiv.org/abs/2305.11206", "recipe"),
    Source("gekhman2024", "Gekhman, Yona, Aharoni, Eyal, Feder, Reichart, Herzig", 2024,
           "Does Fine-Tuning LLMs on New Knowledge Encourage Hallucinations?", "https://arxiv.org/abs/2405.05904",
           "ablation"),
    Source("allenzhu2023", "Allen-Zhu and Li", 2023, "Physics of Language Models: Part 3.1, Knowledge Storage and "
           "Extraction", "https://arxiv.org/abs/2309.14316", "ablation"),
    Source("prechelt1998", "Prechelt", 1998, "Early Stopping — But When? (Neural Networks: Tricks of the Trade, LNCS "
           "1524)", "https://doi.org/10.1007/3-540-49430-8_3", "ablation"),
    Source("guide", "the practitioner guide rankwise's first rules came from (not named in the repository)", None,
           "LoRA/QLoRA rules of thumb: rank bands by task, alpha = 2r, attention-only targets, four red flags",
           None, "guide"),
)}

CLAIMS: dict[str, Claim] = {c.key: c for c in (
    # --- target modules
    Claim("qlora-all-linear", "dettmers2023", "§4 (Fig. 2, LoRA r and target ablation)",
          "The number of adapted layers mattered more than the rank: LoRA on all linear layers of the transformer "
          "block was needed to match full 16-bit finetuning.", False,
          "LLaMA 7B, Alpaca, RougeL; r 8-256", "ablation"),
    Claim("tml-all-layers", "trl-docs", "'Key findings' 1, summarising LoRA Without Regret (TML 2025)",
          "Attention-only LoRA underperforms even when using a higher rank to match parameter count.", True,
          "Llama 3 / Qwen3, Tulu3 and OpenThoughts3 SFT, Adam (TML's experiments)", "ablation"),
    Claim("biderman-targets", "biderman2024", "Fig. 7 (target modules) and the practical takeaways",
          "Adapting all modules (attention and MLP) learned more than attention-only at every rank; for code they "
          "recommend all modules at r = 256.", False,
          "Llama-2 7B, code and math continued pretraining and instruction tuning", "ablation"),
    Claim("raschka-all-layers", "raschka2023", "section 'Enable LoRA for all layers'",
          "Enabling LoRA for all layers, not only the query and value matrices, improved the scores most of the "
          "knobs he tried; his best runs used r = 256 on all layers.", False,
          "Llama-2 7B, Alpaca 50k, AdamW, lit-gpt", "ablation"),
    Claim("unsloth-targets", "unsloth-guide", "section 'Target modules'",
          "Target all the major linear layers (q, k, v, o, gate, up, down); fewer modules to save memory costs "
          "quality.", False, "Unsloth defaults, Llama/Qwen family", "guide"),
    Claim("peft-all-linear", "peft-docs", "LoraConfig.target_modules",
          "'all-linear' selects every linear/Conv1D module of the model except the output layer.", False,
          "peft LoraConfig", "docs"),
    Claim("peft-target-parameters", "peft-docs", "LoraConfig.target_parameters (peft 0.21)",
          "E.g., in many mixture of expert (MoE) layers in HF Transformers, instead of using `nn.Linear`, an "
          "`nn.Parameter` is used. [...] Therefore, to apply LoRA to that parameter, it needs to be targeted with "
          "`target_parameters`.", True, "peft LoraConfig, transformers MoE layers", "docs"),
    Claim("lora-table5", "hu2021", "§7.1, Table 5 (which matrices at a fixed 18M-parameter budget)",
          "At a fixed parameter budget, adapting more weight matrices at a lower rank beat one matrix at a higher "
          "rank: all four attention matrices at r = 2 did best.", False,
          "GPT-3 175B, WikiSQL and MultiNLI", "ablation"),
    Claim("lora-rank", "hu2021", "§7.2, Table 6",
          "A very low rank (r = 1-8) already matched higher ranks on these tasks.", False,
          "GPT-3 175B, WikiSQL and MultiNLI, Wq and Wv adapted", "ablation"),
    # --- alpha and learning rate
    Claim("qlora-recipe", "dettmers2023", "Appendix B (Guanaco training hyperparameters)",
          "Guanaco used r = 64, alpha = 16 on all linear layers, learning rate 2e-4 for 7B/13B and 1e-4 for "
          "33B/65B, dropout 0.1 up to 13B and 0.05 above, batch 16 and a constant schedule.", False,
          "LLaMA 7B-65B, OASST1, paged AdamW, NF4 + double quantization", "recipe"),
    Claim("qlora-optimizer", "qlora-code", "qlora.py training arguments (optim default)",
          "The paper's runs used paged AdamW with 32-bit states (paged_adamw_32bit); paging is what absorbs "
          "the memory spikes, not 8-bit states.", False, "qlora.py, transformers Trainer", "recipe"),
    Claim("qlora-fp16", "qlora-code", "README, known issues",
          "Training with fp16 as the compute dtype can be unstable; bf16 compute is what the paper used.", False,
          "4-bit base, 16-bit compute", "recipe"),
    Claim("tml-lr-rank", "trl-docs", "'Key findings' 3, summarising LoRA Without Regret (TML 2025)",
          "The 1/r scaling in LoRA makes the optimal learning rate approximately rank-independent.", True,
          "TML: alpha = 32 at every rank, Llama 3 / Qwen3, Tulu3 SFT, ranks 1-512, Adam", "ablation"),
    Claim("tinker-lr-size", "tinker-cookbook", "hyperparam_utils.py, get_lr() docstring and its _LORA_LR table "
          "(commit 02face3); recipes/chat_sl/results/sft_sweep.md",
          "Returns empirically-determined optimal LoRA learning rates from a comprehensive SFT sweep across all "
          "Tinker models (tulu3 dataset, batch_size=128, 780 steps).", True,
          "LoRA at alpha = 32 (get_lora_lr_over_full_finetune_lr's default); the table: Llama-3.2-1B and 3B 1e-3, "
          "Llama-3.1-8B and Llama-3.1/3.3-70B 3e-4, Qwen3-4B and Qwen3-8B 1e-3, Qwen3-32B 3e-4, gpt-oss-20b 1e-4",
          "ablation"),
    Claim("tinker-lr-width", "tinker-cookbook-formula", "hyperparam_utils.py, get_lr() (commit 9dfcc3a)",
          "Applies model-family-specific scaling based on hidden size. Only Llama and Qwen families have calibrated "
          "formulas; other models raise NotImplementedError.", True,
          "LoRA rate = 5e-4 x (2000 / hidden_size) ** e, e = 0.781 for Llama and 0.0775 for Qwen (the code under that "
          "docstring); calibrated on models 2048 wide and wider: below that width rankwise quotes it as a hint, not the rate",
          "recipe"),
    Claim("biderman-lr", "biderman2024", "hyperparameter appendix (as summarised in issue 18; not re-checked here)",
          "With alpha = 2r the learning rate had to come down as rank rose: it was halved at r = 256.", False,
          "Llama-2 7B, code and math, alpha = 2r", "recipe"),
    Claim("trl-recipe", "trl-docs", "introduction; SFT and GRPO examples",
          "Recent research from the team at Thinking Machines Lab (Schulman et al., 2025) shows that LoRA can match "
          "full fine-tuning performance when configured correctly, while using only ~67% of the compute.", True,
          "SFT: Qwen2.5-3B-Instruct, r = 256, alpha = 16, all-linear, lr 2e-4, batch 1 x 4; GRPO: Qwen3-0.6B, "
          "r = 1, alpha = 32, lr 5e-5 (1e-5 on SmolLM3-3B)", "recipe"),
    Claim("rslora-scale", "kalajdzievski2023", "§3 (scaling factor analysis) and Fig. 1",
          "With the alpha/r factor, gradients collapse as the rank grows, so high ranks learn no more than low "
          "ones; alpha/sqrt(r) keeps learning stable at every rank.", False,
          "Llama-2 7B, OpenOrca, ranks 4-2048", "theory"),
    Claim("raschka-alpha", "raschka2023", "section on rank and alpha (r = 256 runs)",
          "At r = 256 his best runs set alpha below 2r as well as at 2r (alpha = 128 among the best); alpha = 2r "
          "was a good default, not a rule.", False, "Llama-2 7B, Alpaca 50k, QLoRA and LoRA", "ablation"),
    Claim("unsloth-defaults", "unsloth-guide", "sections 'Learning rate', 'LoRA rank and alpha', 'LoRA dropout'",
          "Start at learning rate 2e-4 for LoRA and QLoRA alike, r = 16 with alpha = r (or 2r), dropout 0, and "
          "1-3 epochs.", False, "Unsloth notebooks, Llama/Qwen family", "guide"),
    # --- rank, capacity, batch, RL
    Claim("tml-capacity", "tml2025", "section on capacity (quoted in TRL's docs, 'Key findings' 2)",
          "For datasets that exceed LoRA capacity, LoRA underperforms FullFT", True,
          "Llama 3, Tulu3 and OpenThoughts3 subsets", "ablation"),
    Claim("tml-short-runs", "tml2025", "learning curves by rank (Tulu3, OpenThoughts3)",
          "Early in training every rank follows the same loss curve; low ranks fall off it only after enough "
          "steps, when their capacity runs out.", False, "Tulu3 SFT, ranks 1-512", "ablation"),
    Claim("tml-batch", "trl-docs", "'Key findings' 4, summarising LoRA Without Regret (TML 2025)",
          "The blog post recommends using an effective batch size < 32 because the authors found LoRA to be less "
          "tolerant of large batch sizes. This could not be mitigated by increasing the LoRA rank.", True,
          "TML: Tulu3 SFT, batch sizes 32-512", "ablation"),
    Claim("tml-rl", "tml2025", "section on reinforcement learning",
          "Policy-gradient RL matched full fine-tuning even at rank 1: an episode carries little information.",
          False, "Llama 3 / Qwen3, MATH and GSM8K, GRPO-style RL, alpha = 32", "ablation"),
    Claim("biderman-rank", "biderman2024", "§4 (rank sweep) and the practical takeaways",
          "Code and math continued pretraining kept improving up to r = 256, where LoRA still trailed full "
          "fine-tuning; they recommend r = 256 for code.", False, "Llama-2 7B, StarCoder-Python, OpenWebMath",
          "ablation"),
    # --- the guide's rules
    Claim("guide-bands", "guide", "rank by task complexity",
          "classification/format/style r = 4-8, instruction/chat r = 16-32, domain/code/reasoning r = 64-128.",
          False, "rules of thumb", "guide"),
    Claim("guide-alpha", "guide", "alpha",
          "Set alpha = 2r; alpha below r under-uses the adapter and alpha far above r destabilises it.", False,
          "rules of thumb", "guide"),
    Claim("guide-targets", "guide", "target modules",
          "Attention projections are enough unless the task must learn new knowledge; spreading a low rank over "
          "every module spreads it too thin.", False, "rules of thumb", "guide"),
    Claim("guide-qlora-lr", "guide", "learning rate",
          "2e-4 for LoRA, a lower 1e-4 for QLoRA because of the 4-bit base.", False, "rules of thumb", "guide"),
    # --- adapter initialisation and LoRA+ (red flag adapter-start; advisor/adapter_init.py)
    Claim("pissa-vs-lora", "pissa-code", "README, introduction",
          "On five common benchmarks, PiSSA outperforms LoRA on all of them using exactly the same setups except for "
          "a different initialization.", True, "Mistral-7B and others; GSM8K 72.86% (PiSSA) vs 67.7% (LoRA)", "ablation"),
    Claim("pissa-4bit", "pissa-code", "README, introduction",
          "On a 4-bit Llama 2-7B, PiSSA reached 49.13% on GSM8K against QLoRA's 39.8% and LoftQ's 40.71%; its fast "
          "SVD initialises in a few seconds.", False, "Llama 2-7B, NF4, GSM8K", "ablation"),
    Claim("loraplus-ratio", "hayou2024", "abstract; §5",
          "Setting B's learning rate a fixed ratio above A's improves results by 1-2% and speeds fine-tuning up to "
          "about 2x at LoRA's cost; a ratio of 2^4 is suggested for LLaMA-class models.", False,
          "RoBERTa, GPT-2, Llama-7B on GLUE and MNLI", "ablation"),
    Claim("loftq-low-bits", "li2023loftq", "abstract; §4",
          "Initialising the adapter from the SVD of the quantization error beats QLoRA most at 2 and 3 bits; at 4 "
          "bits the gain is small.", False, "DeBERTa, BART, Llama-2 7B/13B at 2-4 bits", "ablation"),
    Claim("olora-convergence", "buyukakyuz2024", "abstract",
          "An orthonormal QR-based start makes LoRA converge faster than the default initialisation on LLaMA-class "
          "models at the same rank.", False, "Llama 2 7B, Mistral 7B, Qwen2 and others", "ablation"),
    Claim("eva-convergence", "paischer2024", "abstract",
          "Starting A from the SVD of the adapted layers' input activations, with ranks moved to where the variance "
          "is, converges faster and scores highest on average across language, vision and RL tasks.", False,
          "Llama 2/3, Gemma 2 on math and reasoning; vision and RL tasks", "ablation"),
    Claim("lima-epochs", "zhou2023", "§3 'Training LIMA'",
          "1,000 examples fine-tuned for 15 epochs; the checkpoint was picked between the 5th and the 10th epoch "
          "with a small held-out set.", False, "LLaMA 65B, full fine-tuning, AdamW, batch 32", "recipe"),
    Claim("gekhman-slow", "gekhman2024", "abstract; §4 (learning curves of Known vs Unknown examples)",
          "large language models struggle to acquire new factual knowledge through fine-tuning, as fine-tuning "
          "examples that introduce new knowledge are learned significantly slower than those consistent with the "
          "model's knowledge.", True, "PaLM 2-M, closed-book QA (EntityQuestions)", "ablation"),
    Claim("allenzhu-extraction", "allenzhu2023", "abstract; the QA evaluation on individuals held out of QA training",
          "Without such augmentation, knowledge may be memorized but not extractable, leading to 0% accuracy, "
          "regardless of subsequent instruction fine-tuning.", True,
          "GPT-2 and Llama-shaped models on synthetic biographies; QA trained on a part of the individuals and "
          "tested on the rest, whose biographies were trained", "ablation"),
    Claim("prechelt-patience", "prechelt1998", "abstract; §2.1.2 (real validation curves with several local minima)",
          "From the given mix of 1296 training runs using different 12 problems and 24 different network architectures "
          "I conclude slower stopping criteria allow for small improvements in generalization (here: about 4% on "
          "average), but cost much more training time (here: about factor 4 longer on average).", True,
          "multi-layer perceptrons (RPROP) on 12 PROBEN1 problems; 14 stopping criteria of three classes", "ablation"),
    Claim("guide-dropout", "guide", "dropout and epochs",
          "Dropout 0.05 (0.1 on small data); 1-3 epochs by data size, watching the validation loss.", False,
          "rules of thumb", "guide"),
)}

# Red-flag code -> (status, claim keys). Codes not listed are derived from the estimate, the
# model or the schema (arithmetic and facts about the machine), status "derived".
RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "alpha-below-rank": ("guide-rule-contradicted", ("guide-alpha", "qlora-recipe", "trl-recipe", "tml-lr-rank")),
    "alpha-far-above-rank": ("guide-rule", ("guide-alpha", "tml-rl")),
    "all-modules-low-rank": ("guide-rule-contradicted", ("guide-targets", "lora-table5", "tml-rl")),
    "qlora-high-lr": ("guide-rule-contradicted", ("guide-qlora-lr", "qlora-recipe", "unsloth-defaults")),
    "high-rank-high-dropout": ("guide-rule", ("guide-dropout",)),
    "rslora-off-high-rank": ("evidence", ("rslora-scale", "tml-lr-rank")),
    "lr-out-of-range": ("derived", ("tml-lr-rank", "tinker-lr-size", "qlora-recipe", "biderman-lr")),
    "effective-batch-large": ("evidence", ("tml-batch",)),
    "no-warmup": ("unsourced", ()),
    "adapter-start": ("evidence", ("pissa-vs-lora", "pissa-4bit", "loraplus-ratio", "loftq-low-bits",
                                   "olora-convergence", "eva-convergence")),
    "dropout-out-of-range": ("unsourced", ()),
}


def rule(code: str) -> tuple[str, tuple[str, ...]]:
    """(status, claim keys) of a red-flag code."""
    return RULES.get(code, ("derived", ()))


def cite(keys) -> str:
    """'QLoRA (Dettmers et al. 2023, Appendix B)'-style names for claim keys, joined."""
    out = []
    for k in keys:
        c = CLAIMS[k]
        s = SOURCES[c.source]
        who = s.authors.split(",")[0].split(" and ")[0]
        short = f"{who}{' et al.' if ',' in s.authors else ''} {s.year}" if s.year else "the guide"
        out.append(f"{s.title.split(':')[0]} ({short}, {c.locator})")
    return "; ".join(out)


SHORT = {"dettmers2023": "QLoRA", "qlora-code": "QLoRA code", "hu2021": "LoRA", "biderman2024": "Biderman et al.",
         "tml2025": "LoRA Without Regret", "kalajdzievski2023": "rsLoRA", "raschka2023": "Raschka",
         "unsloth-guide": "Unsloth", "peft-docs": "PEFT docs", "trl-docs": "TRL docs", "guide": "the guide",
         "meng2024": "PiSSA", "pissa-code": "PiSSA code", "hayou2024": "LoRA+", "li2023loftq": "LoftQ",
         "buyukakyuz2024": "OLoRA", "paischer2024": "EVA",
         "allenzhu2023": "Physics of LMs 3.1"}


def names(keys) -> str:
    """The sources of these claims, once each and short: 'QLoRA 2023 · LoRA Without Regret 2025'."""
    seen: list[str] = []
    for k in keys:
        s = SOURCES[CLAIMS[k].source]
        name = SHORT.get(s.key, s.title.split(":")[0]) + (f" {s.year}" if s.year else "")
        if name not in seen:
            seen.append(name)
    return " · ".join(seen)


def to_dict() -> dict:
    """The registry as JSON: sources, claims, statuses, red-flag codes."""
    from dataclasses import asdict

    return {"statuses": list(STATUSES), "sources": {k: asdict(s) for k, s in SOURCES.items()},
            "claims": {k: asdict(c) for k, c in CLAIMS.items()},
            "rules": {code: {"status": st, "citations": list(keys)} for code, (st, keys) in RULES.items()}}
