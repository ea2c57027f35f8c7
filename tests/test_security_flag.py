"""The security risk flag: account takeover, phishing, breaches, fraud, and look-alikes that are not."""

from __future__ import annotations

import pytest

from classifiers.flags import risk_flags


@pytest.mark.parametrize(
    "text",
    [
        # Someone else in the account.
        "@AcmeBank someone logged into my account from Russia last night and changed my email",
        "my account got hacked and they changed the phone number on it",
        "I think my account has been taken over, the name and all my playlists changed",
        "somebody took over my account and is posting ads from it",
        "someone keeps trying to log into my account",
        "someone is using my Netflix account in another country",
        "somebody accessed my account and ordered a PS5 to a different address",
        "my gaming account got taken last night, please help me get it back",
        "somebody is still accessing everything even after the reset",
        "some random guy can log into my account whenever he likes",
        "an unknown device keeps taking over my playlists",
        "someone has my password, they keep changing my settings",
        "my account was compromised and now I can't log in",
        "my account got hijacked overnight",
        "my account got hack and i cant get back in",
        # Sign-ins, codes and resets nobody asked for.
        "Just got a login alert from a device I don't recognise",
        "Unknown sign-in on my account from Lagos",
        "Keep getting 2FA codes I didn't request, is someone trying to get into my account?",
        "got a verification code text but I never asked for one",
        "Received a password reset email I didn't ask for, should I be worried?",
        "there's a purchase on my account that wasn't me",
        "Why did I get a 'new sign in from Windows PC' email? I only use a Mac",
        "my apple id was locked because of suspicious activity",
        "I keep getting emails saying my password was changed. I didn't change it!!",
        "Received a text with a code to reset my password. I never requested that",
        "I got locked out after someone changed my recovery phone",
        # Phishing and impersonation.
        "Got a text claiming to be from @ShopFast saying my parcel is held, pay £1.45 to release it",
        "received an email pretending to be Amazon asking for my card details",
        "Is this email really from you? It says to verify my account through a link",
        "There's a fake account impersonating your support team and DMing people",
        "Scam text going round using your logo, careful everyone",
        "I clicked a link in a fake text from you and now I'm worried",
        "got a call from someone posing as your fraud team asking for my PIN",
        "is this giveaway account legit or a scam?",
        "got an sms from 'royal mail' with a link, looks dodgy, is it you?",
        "Beware everyone - there's a copycat site selling your trainers for £20",
        # Breaches and leaks.
        "Was there a data breach? I'm getting spam on the address I only ever gave you",
        "my details were leaked in your breach, what are you doing about it",
        "my email and password were exposed in the leak",
        "you've got a serious security flaw, anyone can see other people's orders",
        "your company lost my personal data and I found out from the news",
        "hackers got my details from your site",
        # Cards and charges.
        "someone stole my card details and bought stuff on your site",
        "my card details were stolen after I used your website",
        "3 fraudulent charges on my account from your app this morning",
        "I've been charged for two orders I never placed",
        "I was charged for 3 things I never ordered",
        "Someone used my card on your app without my permission",
        "my card was used without my knowledge on your website",
        "my card was cloned after I paid at your petrol station",
        "someone ordered 6 gift cards with my saved card last night",
        "I never authorised this payment of £89",
        "you keep charging my card every month and I don't have an account",
        "I don't have an account with you, so why is money leaving my bank?",
        "how did you get my card details without my consent?",
        "I lost savings to a cyber crime on your marketplace",
    ],
)
def test_raises_security(text: str) -> None:
    """Raises security on takeovers, unrequested codes, phishing, breaches and fraudulent charges."""
    assert "security" in risk_flags(text)


@pytest.mark.parametrize(
    "text",
    [
        "I forgot my password, how do I reset it?",
        "The verification code never arrives when I try to log in",
        "I requested a verification code three times and got nothing",
        "I changed my password and now the app logs me out",
        "I reset my password but I never logged out of the app",
        "I got a code but I haven't tried it yet",
        "the app says my session expired every 5 min",
        "can I change the email on my account?",
        "can i log in on two devices at once?",
        "my kid used my account to buy robux lol",
        "I can't get into my account, it says it is locked",
        "I tried to log into my account but it says wrong password",
        "can someone help me log in? it keeps failing",
        "can someone get access to my order history for me?",
        "Someone at your store was so helpful today",
        "someone used to answer the phone at this branch",
        "i have a new device, how do i sign in?",
        "Please add two-factor authentication to the app",
        "what's the security code on the back of the card for?",
        "the security guard at the entrance was rude",
        "I got an email saying my order shipped but nothing came",
        "too many emails I didn't sign up for, unsubscribe me",
        "stop pretending to be a customer-focused company",
        "is the app really slow for everyone or just me?",
        "the website looks dodgy since the redesign",
        "the engineer said he was from your company and fixed it",
        "Someone keeps calling me from your company about a survey",
        "can you stop sending me promo texts",
        "is this sale legit? 90% off seems too good",
        "I never ordered this, you sent me the wrong item",
        "my card was charged twice for one order",
        "the driver took a weird route and charged me more",
        "I lost my card, can I still collect my order?",
        "just need to update my card details",
        "any hacks to make the app use less battery?",
        "the hackathon was fun, thanks for sponsoring",
        "Phish tickets on sale yet?",
        "that spoof of your ad was hilarious",
        "my shampoo bottle leaked all over the box",
        "the ceiling has been dripping since the leak last week",
        "the quality has really been compromised lately",
        "after the breach of contract I want my money back",
        "I don't have a subscription, I cancelled it in May",
        "someone is using the family plan slot I set up",
        "someone else is using the shared Wi-Fi, is that why it's slow?",
        "I don't have an account yet, how much does it cost?",
        "my account got taken off the waiting list",
    ],
)
def test_does_not_raise_security_on_look_alikes(text: str) -> None:
    """Leaves alone forgotten passwords, codes that do not arrive, spoofs, leaky bottles and the like."""
    assert "security" not in risk_flags(text)


def test_names_the_phrase_that_raised_it() -> None:
    """Shows the agent the words that raised the flag, in the customer's own case."""
    flags = risk_flags("Got a 2FA code I didn't request. Is someone trying to get in?")
    assert flags["security"] == "2FA code I didn't request"
