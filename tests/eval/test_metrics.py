import pytest
import torch
from torchmetrics.retrieval import RetrievalHitRate, RetrievalRecall

from hypervldd.eval import retrieval_metrics, retrieval_metrics_from_scores


def test_hand_computed_example():
    # 3 images; captions 0,1 -> image 0; 2,3 -> image 1; 4 -> image 2.
    txt2img = torch.tensor([0, 0, 1, 1, 2])
    s = torch.tensor(
        [
            [0.1, 0.9, 0.8, 0.2, 0.0],  # image 0: best GT caption 1 ranks first -> rank 0
            [0.7, 0.1, 0.3, 0.6, 0.2],  # image 1: best GT (0.6) behind 0.7 -> rank 1
            [0.5, 0.4, 0.9, 0.8, 0.3],  # image 2: GT 0.3 behind 4 others -> rank 4
        ]
    )
    m = retrieval_metrics_from_scores(s, txt2img, ks=(1, 2, 5))
    assert m["TR@1"] == pytest.approx(100 / 3)
    assert m["TR@2"] == pytest.approx(200 / 3)
    assert m["TR@5"] == pytest.approx(100.0)
    # Captions (columns): image ranks 0: [2nd->1], 1:[1st->0], 2:[1->... ] computed by hand:
    # cap0 col [0.1,0.7,0.5] GT img0 -> rank 2; cap1 [0.9,0.1,0.4] -> 0; cap2 [0.8,0.3,0.9]
    # GT img1 -> rank 2; cap3 [0.2,0.6,0.8] -> 1; cap4 [0.0,0.2,0.3] GT img2 -> 0.
    assert m["IR@1"] == pytest.approx(40.0)
    assert m["IR@2"] == pytest.approx(60.0)
    assert m["IR@5"] == pytest.approx(100.0)
    assert m["mean"] == pytest.approx(sum(v for k, v in m.items() if k != "mean") / 6)


def test_ties_are_pessimistic():
    txt2img = torch.arange(20)
    m = retrieval_metrics_from_scores(torch.zeros(20, 20), txt2img, ks=(1, 5, 10))
    assert all(v == 0.0 for v in m.values())


def test_nan_scores_are_refused():
    s = torch.rand(3, 3)
    s[1, 2] = torch.nan
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics_from_scores(s, torch.arange(3))


def test_chunking_does_not_change_results():
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(37, 8, generator=g), torch.randn(111, 8, generator=g)
    t2i = torch.arange(37).repeat_interleave(3)

    def score(a, b):
        return a @ b.T

    full = retrieval_metrics(img, txt, t2i, score)
    tiny = retrieval_metrics(img, txt, t2i, score, max_chunk_elements=50)
    assert full == tiny


def _torchmetrics(metric, scores, relevant):
    q = scores.shape[0]
    idx = torch.arange(q)[:, None].expand_as(scores)
    return 100 * float(metric(scores.flatten(), relevant.flatten(), indexes=idx.flatten()))


@pytest.mark.parametrize("k", [1, 5, 10])
def test_matches_torchmetrics(k):
    g = torch.Generator().manual_seed(k)
    n_img, caps = 40, 5
    t2i = torch.arange(n_img).repeat_interleave(caps)
    s = torch.randn(n_img, n_img * caps, generator=g)
    s += 1.5 * (t2i[None, :] == torch.arange(n_img)[:, None])  # make it non-trivial
    ours = retrieval_metrics_from_scores(s, t2i, ks=(k,))
    # IR: one relevant image per caption -> recall@k == hit@k.
    rel_ir = t2i[:, None] == torch.arange(n_img)[None, :]
    ir = _torchmetrics(RetrievalRecall(top_k=k), s.T, rel_ir)
    assert ours[f"IR@{k}"] == pytest.approx(ir)
    # TR: "any of the image's captions in the top k" is torchmetrics' hit rate.
    rel_tr = torch.arange(n_img)[:, None] == t2i[None, :]
    tr = _torchmetrics(RetrievalHitRate(top_k=k), s, rel_tr)
    assert ours[f"TR@{k}"] == pytest.approx(tr)
    # With one caption per image, TR is also torchmetrics' recall.
    s1 = s[:, ::caps]
    one = retrieval_metrics_from_scores(s1, torch.arange(n_img), ks=(k,))
    tr1 = _torchmetrics(RetrievalRecall(top_k=k), s1, torch.eye(n_img, dtype=torch.bool))
    assert one[f"TR@{k}"] == pytest.approx(tr1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics_from_scores(torch.rand(2, 2), torch.arange(2), ks=(0,))
    with pytest.raises(ValueError, match="txt2img"):
        retrieval_metrics(torch.rand(2, 3), torch.rand(4, 3), torch.arange(3), lambda a, b: a @ b.T)
