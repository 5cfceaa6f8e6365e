r"""A tiny GPT trained on Python's own documentation, in functional form.

The text is the standard library's ``pydoc_data.topics`` (the help topics
of the Python documentation, about 465,000 characters), so nothing is
downloaded. It is cut into tokens, either characters or lowercased words,
and a fixed training set of ``n_train`` windows of ``context + 1`` tokens
is drawn from it with ``data_seed``. The model is a pre-LayerNorm
decoder-only transformer (GPT-2's block layout) written with
``torch.nn.functional`` on a dict of parameters, with causal attention by
masking and no in-place operations, so that ``torch.func.vmap`` can train
many copies at once.
"""

import collections
import functools
import math
import re

import torch
import torch.nn.functional as F

from ._common import (check_choice, check_device, check_dtype, check_int,
                      seeded, to_floats)
from .base import Problem, minibatch_indices

TOKENIZATIONS = ("char", "word")
UNKNOWN = "<unk>"
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")


def pydoc_text():
    """The text of ``pydoc_data.topics``: its topics in sorted order of
    their names, joined by blank lines."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[key] for key in sorted(topics))


def split_tokens(text, tokens="char"):
    r"""``text`` as a list of tokens.

    ``"char"``: one token per character. ``"word"``: the text is
    lowercased and cut into runs of word characters (``\w+``) and single
    punctuation marks; white space is dropped.
    """
    check_choice("tokens", tokens, TOKENIZATIONS)
    if tokens == "char":
        return list(text)
    return WORD_PATTERN.findall(text.lower())


def build_vocabulary(pieces, vocab_size=None):
    """The vocabulary of a token list: the most frequent tokens first.

    With ``vocab_size=None``, or at least the number of distinct tokens,
    every token has its own id. Otherwise the ``vocab_size - 1`` most
    frequent tokens (ties broken by the token's text) get ids and every
    other token maps to ``"<unk>"``, the last id.

    Returns:
        The list of tokens, in id order.
    """
    counts = collections.Counter(pieces)
    ranked = sorted(counts, key=lambda tok: (-counts[tok], tok))
    if vocab_size is not None:
        vocab_size = check_int("vocab_size", vocab_size, minimum=2)
    if vocab_size is None or vocab_size >= len(ranked):
        return ranked
    return ranked[:vocab_size - 1] + [UNKNOWN]


@functools.lru_cache(maxsize=4)
def _encoded(tokens, vocab_size):
    pieces = split_tokens(pydoc_text(), tokens)
    vocab = build_vocabulary(pieces, vocab_size)
    ids = {tok: i for i, tok in enumerate(vocab)}
    unknown = len(vocab) - 1
    stream = torch.tensor([ids.get(tok, unknown) for tok in pieces],
                          dtype=torch.int64)
    return tuple(vocab), stream


class CharTransformer(Problem):
    r"""Next-token prediction with a small pre-LayerNorm GPT.

    For a window :math:`t_0, \dots, t_T` the model reads
    :math:`t_0, \dots, t_{T-1}` and is scored on predicting
    :math:`t_1, \dots, t_T`:

    .. math::

        L(\theta) = \frac{1}{nT}\sum_{j=1}^{n}\sum_{s=1}^{T}
        -\log p_\theta\!\left(t^{(j)}_s \mid t^{(j)}_{<s}\right).

    The network, with width :math:`D`, :math:`H` heads of size
    :math:`D/H` and :math:`L` blocks:

    .. math::

        h^{(0)}_s &= E[t_s] + P[s], \\
        a &= h + \operatorname{Attn}(\operatorname{LN}_1(h)), \qquad
        h' = a + W_2\,\operatorname{GELU}(W_1 \operatorname{LN}_2(a)
        + c_1) + c_2, \\
        \operatorname{Attn}(u) &= W_O\,\operatorname{concat}_{k}
        \operatorname{softmax}\!\left(\frac{Q_k K_k^\top}{\sqrt{D/H}}
        + M\right) V_k + b_O,

    with :math:`M_{sr} = -\infty` for :math:`r > s` (causal mask), a final
    LayerNorm and an untied output matrix (no bias). The initialization
    follows GPT-2: weights normal with standard deviation 0.02 (the two
    projections back into the residual stream :math:`0.02/\sqrt{2L}`),
    biases 0, LayerNorm gains 1.

    The parameter dict's keys: ``wte`` (:math:`V\times D`), ``wpe``
    (context :math:`\times D`), ``h{l}.ln1.weight``, ``h{l}.ln1.bias``,
    ``h{l}.attn.qkv.weight`` (:math:`3D\times D`), ``h{l}.attn.qkv.bias``,
    ``h{l}.attn.proj.weight``, ``h{l}.attn.proj.bias``,
    ``h{l}.ln2.weight``, ``h{l}.ln2.bias``, ``h{l}.mlp.fc.weight``
    (:math:`4D\times D`), ``h{l}.mlp.fc.bias``, ``h{l}.mlp.proj.weight``,
    ``h{l}.mlp.proj.bias``, ``ln_f.weight``, ``ln_f.bias``, ``head``
    (:math:`V\times D`).

    A batch is a 1-tuple: an int64 tensor of shape
    ``(batch_size, context + 1)``, windows drawn with replacement from
    the ``n_train`` training windows (all of them for ``None``).

    Args:
        tokens: ``"char"`` (characters) or ``"word"`` (lowercased words
            and punctuation marks).
        vocab_size: the vocabulary size :math:`V`: the ``V - 1`` most
            frequent tokens and ``"<unk>"``; ``None`` for every distinct
            token with ``"char"`` and for 1,000 with ``"word"``.
        n_layers: the number of blocks :math:`L`.
        width: the model width :math:`D`, a multiple of ``n_heads``.
        n_heads: the number of attention heads :math:`H`.
        context: the number of tokens :math:`T` the model reads.
        n_train: the number of training windows.
        data_seed: the seed of the windows' start positions.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).

    Attributes:
        vocab: the tokens, in id order.
        n_params: the number of parameters.

    NOTE: the help topics change between Python releases, so the text,
    and with it the vocabulary and the windows, depend on the Python
    version that runs the problem; ``config()`` does not record it.
    """

    name = "char-transformer"

    def __init__(self, tokens="char", vocab_size=None, n_layers=2,
                 width=64, n_heads=4, context=64, n_train=128,
                 data_seed=0, dtype="float32", device=None):
        check_choice("tokens", tokens, TOKENIZATIONS)
        if vocab_size is None and tokens == "word":
            vocab_size = 1000
        if vocab_size is not None:
            vocab_size = check_int("vocab_size", vocab_size, minimum=2)
        self.n_layers = check_int("n_layers", n_layers)
        self.width = check_int("width", width)
        self.n_heads = check_int("n_heads", n_heads)
        if self.width % self.n_heads:
            raise ValueError(f"Invalid n_heads: {n_heads!r} (must divide "
                             f"width={width})")
        self.context = check_int("context", context)
        self.n_train = check_int("n_train", n_train)
        data_seed = check_int("data_seed", data_seed, minimum=0)
        self.dtype, self._dtype_name = check_dtype(dtype)
        self.device = check_device(device)

        self.vocab, stream = _encoded(tokens, vocab_size)
        self.vocab_size = len(self.vocab)
        if stream.numel() <= self.context + 1:
            raise ValueError(f"Invalid context: {context!r} (longer than "
                             "the text)")
        starts = torch.randint(stream.numel() - self.context, (self.n_train,),
                               generator=seeded(data_seed))
        windows = starts[:, None] + torch.arange(self.context + 1)
        self.windows = stream[windows].to(self.device)
        self._mask = torch.ones(self.context, self.context,
                                dtype=torch.bool,
                                device=self.device).tril()
        self.n_params = sum(p.numel() for p in self.init(0).values())
        self._args = {"tokens": tokens, "vocab_size": self.vocab_size,
                      "n_layers": self.n_layers, "width": self.width,
                      "n_heads": self.n_heads, "context": self.context,
                      "n_train": self.n_train, "data_seed": data_seed,
                      "dtype": self._dtype_name}

    def init(self, seed):
        gen = seeded(seed)
        d, v = self.width, self.vocab_size
        resid = 0.02 / math.sqrt(2 * self.n_layers)

        def normal(*shape, std=0.02):
            return std * torch.randn(shape, dtype=torch.float64,
                                     generator=gen)

        def zeros(*shape):
            return torch.zeros(shape, dtype=torch.float64)

        def ones(*shape):
            return torch.ones(shape, dtype=torch.float64)

        params = {"wte": normal(v, d), "wpe": normal(self.context, d)}
        for layer in range(self.n_layers):
            p = f"h{layer}."
            params.update({
                p + "ln1.weight": ones(d), p + "ln1.bias": zeros(d),
                p + "attn.qkv.weight": normal(3 * d, d),
                p + "attn.qkv.bias": zeros(3 * d),
                p + "attn.proj.weight": normal(d, d, std=resid),
                p + "attn.proj.bias": zeros(d),
                p + "ln2.weight": ones(d), p + "ln2.bias": zeros(d),
                p + "mlp.fc.weight": normal(4 * d, d),
                p + "mlp.fc.bias": zeros(4 * d),
                p + "mlp.proj.weight": normal(d, 4 * d, std=resid),
                p + "mlp.proj.bias": zeros(d)})
        params.update({"ln_f.weight": ones(d), "ln_f.bias": zeros(d),
                       "head": normal(v, d)})
        return {key: value.to(dtype=self.dtype, device=self.device)
                for key, value in params.items()}

    def _attention(self, params, prefix, u):
        d, heads = self.width, self.n_heads
        qkv = F.linear(u, params[prefix + "qkv.weight"],
                       params[prefix + "qkv.bias"])
        q, k, v = qkv.split(d, dim=-1)

        def by_head(t):
            return t.reshape(*t.shape[:-1], heads, d // heads) \
                .transpose(-3, -2)

        q, k, v = by_head(q), by_head(k), by_head(v)
        steps = u.shape[-2]
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
        scores = torch.where(self._mask[:steps, :steps], scores,
                             torch.full_like(scores, -math.inf))
        mixed = torch.softmax(scores, dim=-1) @ v
        mixed = mixed.transpose(-3, -2)
        mixed = mixed.reshape(*mixed.shape[:-2], d)
        return F.linear(mixed, params[prefix + "proj.weight"],
                        params[prefix + "proj.bias"])

    def logits(self, params, inputs):
        """The next-token logits, shape ``(*inputs.shape, V)``, for token
        ids ``inputs`` of at most ``context`` steps."""
        d = (self.width,)
        steps = inputs.shape[-1]
        h = F.embedding(inputs, params["wte"]) + params["wpe"][:steps]
        for layer in range(self.n_layers):
            p = f"h{layer}."
            u = F.layer_norm(h, d, params[p + "ln1.weight"],
                             params[p + "ln1.bias"])
            h = h + self._attention(params, p + "attn.", u)
            u = F.layer_norm(h, d, params[p + "ln2.weight"],
                             params[p + "ln2.bias"])
            u = F.gelu(F.linear(u, params[p + "mlp.fc.weight"],
                                params[p + "mlp.fc.bias"]))
            h = h + F.linear(u, params[p + "mlp.proj.weight"],
                             params[p + "mlp.proj.bias"])
        h = F.layer_norm(h, d, params["ln_f.weight"], params["ln_f.bias"])
        return F.linear(h, params["head"])

    def _token_losses(self, params, windows):
        z = self.logits(params, windows[..., :-1])
        target = windows[..., 1:]
        losses = F.cross_entropy(z.reshape(-1, self.vocab_size),
                                 target.reshape(-1), reduction="none")
        hits = (z.argmax(-1) == target).to(z.dtype)
        return losses, hits

    def sample(self, generator, batch_size):
        self.check_batch_size(batch_size)
        idx = minibatch_indices(generator, self.n_train, batch_size)
        return (self.windows[idx.to(self.device)],)

    def loss(self, params, batch):
        """The mean next-token cross-entropy of the windows in ``batch``.
        """
        (windows,) = batch
        return self._token_losses(params, windows)[0].mean()

    def metric_tensors(self, params):
        """``"loss"`` and next-token ``"accuracy"`` on all training windows,
        as 0-d tensors (pure, so it can be vmapped)."""
        losses, hits = self._token_losses(params, self.windows)
        return {"loss": losses.mean(), "accuracy": hits.mean()}

    def metrics(self, params):
        """:meth:`metric_tensors` as floats."""
        with torch.no_grad():
            return to_floats(self.metric_tensors(params))

    def config(self):
        return {"name": self.name, **self._args}
