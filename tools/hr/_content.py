"""Static text of the HR scenario: employee handbook sections and announcements.

Kept apart from the seeding code so the numbers stated here can be checked
against the tools (leave entitlements, expense limits, ticket priorities...).
"""

from __future__ import annotations

__all__ = ["HANDBOOK", "ANNOUNCEMENTS"]

# (section_id, title, text). The figures match the database and the tools:
# 25/10/20/30 days of annual/sick/parental/unpaid leave, the expense limits of
# expense_policies, IT ticket categories and priorities, rooms, courses.
HANDBOOK: list[tuple[str, str, str]] = [
    ("annual-leave", "Annual Leave and Public Holidays", """\
Every employee is entitled to 25 working days of paid annual leave per calendar year, in \
addition to the public holidays of the country where they are employed. Part-time employees \
receive a pro-rata entitlement based on their contracted working days, and employees who join or \
leave during the year receive a proportional share for the months they are employed.

How to request annual leave. Submit every leave request through the HR assistant before the \
leave starts; requests cannot be entered for dates in the past. For absences longer than three \
working days please give at least two weeks of notice, and for absences longer than two weeks at \
least six weeks. Only working days (Monday to Friday) count against your balance, so a request from \
a Monday to the following Sunday uses five days. The days are deducted from your balance as soon as \
the request is submitted, and the request stays pending until your manager approves it. Managers \
are asked to decide within five working days. Approved leave is visible to your team in the shared \
absence calendar.

Changing or cancelling leave. A pending or approved request can be cancelled in the HR assistant \
up to the day it starts; the days are then returned to your balance straight away. Leave that has \
already started cannot be cancelled by you: if you return early, ask your manager and HR to adjust \
the record. To move leave to other dates, cancel the original request and submit a new one.

Balance and carry-over. Your balance shows the days you are entitled to, the days taken or booked, \
and the days remaining. The balance cannot go below zero: a request for more days than you have \
left is refused. Up to five unused days may be carried over into the next year and must be used \
by 31 March; any other unused days lapse on 31 December unless local law says otherwise. Untaken \
leave is paid out only when you leave the company.

Unpaid leave. With the approval of your manager you may take up to 30 working days of unpaid \
leave per year, for example for an extended family visit or a personal project. Unpaid leave does \
not reduce your annual leave entitlement, but salary and pension contributions pause for its \
duration.

Busy periods. Teams may define short periods during which leave is granted only in exceptional \
cases, such as the last five working days of the financial year for Finance. Such periods are \
announced at least three months in advance.
"""),
    ("sick-leave", "Sick Leave and Medical Appointments", """\
If you are ill and unable to work, stay at home and look after yourself. Your health and the \
health of your colleagues come first, and nobody is expected to work while unwell.

Reporting an absence. Tell your manager before 10:00 on the first day of absence, by phone or \
message, and say roughly how long you expect to be away. You do not have to share a diagnosis. \
Once you are back, record the days as sick leave in the HR assistant so that your balance and \
the absence calendar are correct. If you fall ill during a period of annual leave and have a \
medical certificate, HR will convert the affected days back into annual leave.

Paid sick days. Every employee has 10 days of fully paid company sick leave per calendar year. \
Beyond these days statutory sick pay applies, topped up by the company to 80 percent of your \
salary for up to six months. Sick days do not reduce your annual leave entitlement. Days off to \
care for a sick child or dependant are recorded as sick leave as well.

Medical certificates. A certificate from a doctor is required from the fourth consecutive \
calendar day of absence. Upload a scan to HR within a week; the original is not needed. HR may \
ask for a certificate earlier in the case of repeated short absences, after a conversation with \
you.

Medical appointments. Please try to schedule routine appointments outside core hours. \
Appointments of up to two hours can be made up through flexible working and do not need to be \
recorded as leave. Longer appointments, treatments and hospital stays are recorded as sick leave.

Longer illness and returning to work. After an absence of more than two weeks, your manager will \
invite you to a short return-to-work conversation to agree any support you need. The company \
works with an independent occupational health service that can recommend adjustments such as a \
phased return with reduced hours, a modified workstation or temporary changes in duties. \
Information about your health is confidential and is shared only with the people who need it to \
support you.

Mental health. Mental health conditions are treated exactly like physical ones. The confidential \
employee assistance programme offers free counselling sessions for you and your family, around \
the clock, and trained mental health first aiders are available in every office.
"""),
    ("parental-leave", "Parental Leave", """\
The company supports every parent, whatever the way their family grows. This section describes \
the company's own parental leave, which comes on top of maternity, paternity and adoption leave \
provided by law.

Entitlement. Every employee who becomes a parent through birth, adoption, foster placement or \
surrogacy is entitled to 20 working days of fully paid company parental leave per child. The \
entitlement is the same for all parents regardless of gender and of length of service, and it is \
available from the first day of employment. Parents of twins or multiple births receive the \
entitlement once per birth.

When to take it. Company parental leave can be taken at any time within the first 12 months \
after the birth or placement of the child. It can be taken in one go or split into up to four \
blocks of at least five consecutive working days each. Unused parental leave lapses when the \
child is 12 months old or has been with the family for 12 months.

How to apply. Let your manager and HR know at least eight weeks before you plan to start, or as \
soon as reasonably possible for adoptions with short notice. Then submit each block as a parental \
leave request in the HR assistant. HR will confirm the arrangement in writing and explain the \
statutory benefits you can claim alongside the company leave.

During your leave. Your salary continues in full during the 20 company days, as do pension \
contributions, health insurance and all other benefits, and you keep accruing annual leave. You \
may agree up to ten paid keeping-in-touch days with your manager, for example to attend a team \
offsite or a training course; they are optional and never count as a return to work.

Returning to work. You return to the same role on the same terms. Many parents choose to come \
back gradually: on request you can work reduced hours for up to six months after your return, \
or agree a flexible schedule with your manager. Every office has a private room for nursing \
parents, with a fridge and a lockable door, which can be booked through reception.

Protection. Nobody may be treated less favourably for taking or asking about parental leave. \
Concerns should be raised with HR or through the speak-up line described in the Code of Conduct.
"""),
    ("remote-work", "Remote and Hybrid Work", """\
Most roles at the company are hybrid: you combine working from the office with working from home \
to suit the needs of your team and your own circumstances. Some roles, such as reception and \
facilities, need to be on site every day.

Office days. Hybrid employees work from the office at least two days a week. Each team agrees an \
anchor day when everyone is in, so that meetings, planning and social time happen in person. \
Fully remote arrangements are possible in exceptional cases and are agreed in writing with your \
manager and HR.

Working from home. Your home workspace must be quiet, safe and private enough for confidential \
calls. Complete the home workstation self-assessment in your first month of hybrid work. The \
company provides a laptop, headset and one external monitor, and you can claim up to 300 EUR \
once every three years for a desk chair or desk as an equipment expense. Internet costs are \
covered by the monthly remote work allowance of 30 EUR paid with your salary.

Security at home. Always connect through the company VPN, lock your screen when you step away \
and never let family members use your work laptop. Do not print confidential documents at home. \
Public Wi-Fi in cafes, hotels or trains may only be used with the VPN switched on.

Availability. Wherever you work, be reachable during core hours from 10:00 to 16:00 and keep your \
calendar up to date so colleagues can see when you are available. Cameras on is the default for \
team meetings but not an obligation.

Working from another country. Working temporarily from a country other than your country of \
employment has tax, social security and immigration consequences. You may do so for up to 20 \
working days per calendar year, after approval by your manager and HR at least two weeks in \
advance. Longer stays require an individual assessment and are usually not possible.

Changing your arrangement. Requests to change your hybrid pattern or to work remotely on a \
permanent basis are discussed with your manager and answered in writing within four weeks. The \
company may ask teams to be in the office more often for specific periods, such as onboarding of \
new colleagues or critical project phases.
"""),
    ("business-travel", "Business Travel", """\
Business travel should be necessary, safe and good value. Before you plan a trip, consider \
whether a video call would achieve the same result.

Approval and booking. Every business trip needs the approval of your manager before anything is \
booked. Flights, trains and hotels are booked through the corporate travel desk, which holds the \
company rates and keeps track of where travellers are in case of an emergency. Bookings made \
elsewhere are reimbursed only if they were cheaper than the travel desk's offer.

Transport. Rail is the preferred option for journeys of up to four hours. Flights are booked in \
economy class; premium economy is allowed for flights longer than six hours. Taxis and ride-hailing \
are reimbursed for journeys to and from stations and airports when public transport is not \
reasonably available, and always for journeys late at night. Using your own car is reimbursed \
at 0.30 EUR per kilometre; car rental needs prior approval.

Accommodation. Hotel rooms are booked up to 180 EUR per night in most cities and up to 250 EUR \
per night in major capitals and financial centres, including taxes and breakfast. Longer stays \
of more than a week may use serviced apartments.

Meals while travelling. Meals are reimbursed at their actual cost up to 75 EUR per day, claimed \
in the meals category. Alcohol, minibar items and room service beyond a normal meal are not \
reimbursed.

Claiming travel costs. Submit travel costs as expense claims in the travel category after the \
trip, with one claim per trip where possible. A single travel claim may not exceed 2,000 EUR; \
flights and hotels booked by the travel desk are paid directly and are never claimed. Receipts \
are required for every travel cost above 25 EUR.

Safety and insurance. All business travellers are covered by the company travel insurance, \
including medical assistance abroad. Check the travel advice for your destination before you go, \
keep your phone charged and reachable, and contact the 24-hour assistance line in an emergency. \
Trips to high-risk destinations need additional approval from the security team.

Combining business and leisure. You may extend a business trip with annual leave, provided the \
extra costs are yours and the leave is requested in the HR assistant as usual.
"""),
    ("expenses", "Expense Claims and Reimbursement", """\
The company reimburses reasonable costs that you pay out of your own pocket while doing your \
job. This section explains what can be claimed, the limits per claim and how a claim is handled.

Categories and limits. Every expense claim belongs to one of five categories, each with a \
maximum amount per claim: travel up to 2,000 EUR, meals up to 75 EUR, equipment up to 1,500 EUR, \
training up to 2,500 EUR and other costs up to 300 EUR. A claim above the limit of its category \
is refused; do not split one purchase into several claims to stay below a limit. Costs above \
the limits, such as a conference with flights and several nights of hotel, must be booked \
through the travel desk or paid by a purchase order arranged with Finance beforehand.

Receipts. Keep an itemised receipt or invoice for every expense. Receipts are required for travel, \
meals and other claims above 25 EUR, and always for equipment and training claims, whatever the \
amount. The expense policy of each category in the HR assistant shows its limit and the amount \
above which a receipt is needed. Card slips without item details are not accepted.

How to claim. Submit each claim in the HR assistant with the category, the amount in EUR, the \
date on which you paid and a short description of the business purpose. Expenses in other \
currencies are converted at the exchange rate of the payment date. A claim cannot be dated in \
the future. Please submit claims within 90 days of the expense; later claims may be rejected \
by Finance.

What happens next. A new claim has the status submitted. Your manager reviews it and either \
approves or rejects it; a rejection always comes with a reason. Approved claims are paid with \
the next monthly salary run, after which their status changes to paid. Reimbursements are \
shown separately from your salary and are not taxed.

Not reimbursable. Alcohol, except at approved client events; personal items and clothing; \
fines and penalties; upgrades not allowed by the travel policy; gifts to colleagues; and costs \
already covered by an allowance, such as the remote work allowance.

Misuse. Submitting false or inflated claims is a serious breach of the Code of Conduct and may \
lead to dismissal. If you are unsure whether something can be claimed, ask Finance before you \
spend the money.
"""),
    ("it-security", "Information Security and Passwords", """\
Everyone is responsible for protecting the information of the company, our customers and our \
colleagues. Most security incidents start with a human mistake, so these rules apply to every \
employee, contractor and intern.

Passwords and sign-in. Use a passphrase of at least 14 characters for your company account and \
never reuse it for any other service. Store all other passwords in the company password manager. \
Multi-factor authentication is mandatory for every company system; approve sign-in prompts only \
when you started the sign-in yourself. Never share your password or one-time codes with anyone, \
including IT staff: IT will never ask for them.

Phishing. Be suspicious of unexpected messages that ask you to click a link, open an attachment, \
change payment details or act urgently. Report suspicious emails with the Report Phishing button \
in your mail client. If you clicked a link or entered your password by mistake, change your \
password at once and open a high priority IT ticket in the access category: reacting quickly \
matters more than anything else, and nobody is blamed for reporting.

Devices. Company laptops are encrypted and managed centrally; do not disable security software or \
install unapproved tools. Lock your screen whenever you leave your device; screens lock \
automatically after five minutes. Report a lost or stolen laptop or phone within one hour as a \
high priority hardware ticket so that it can be wiped remotely. USB storage devices are blocked; \
share files through the approved cloud storage instead.

Handling information. Information is classified as public, internal, confidential or restricted. \
Confidential and restricted information may only be shared with people who need it for their \
work, must not be stored on personal devices or private cloud accounts, and must be encrypted \
when sent outside the company. Keep a clear desk and collect printouts immediately.

Access. Access to systems is granted on the principle of least privilege and reviewed every \
quarter by the data owners. Request additional access through an IT ticket in the access \
category; your manager and the data owner approve it. When you change roles, access you no \
longer need is removed.

Training. Completing the security awareness course is mandatory for every employee once a year \
and within the first month for new joiners. Breaches of this policy can lead to disciplinary \
action, and deliberate misuse of company systems to dismissal.
"""),
    ("it-support", "IT Support and Equipment", """\
The IT service desk helps with hardware, software, accounts and connectivity. It is staffed from \
08:00 to 18:00 on working days; outside these hours an on-call engineer handles only high \
priority incidents.

Opening a ticket. Ask for help by creating an IT ticket in the HR assistant. Choose the category \
that fits best: hardware for laptops, monitors, phones and peripherals; software for installing, \
updating or fixing applications; access for accounts, passwords, permissions and shared drives; \
network for Wi-Fi, VPN and connectivity problems; and other for everything else. Describe what \
you were doing, what went wrong, any error message word for word, and since when the problem \
occurs. One ticket per problem helps the desk route it to the right team.

Priorities and response times. Tickets have three priorities. High is for problems that stop \
you from working completely or for security incidents such as a lost device; the desk responds \
within four business hours. Normal, the default, is for problems that slow you down; the \
response target is one business day. Low is for requests and questions that are not urgent; the \
response target is three business days. Please do not mark tickets as high priority unless they \
really are: it delays help for colleagues who cannot work at all.

Ticket status. A new ticket is open. When an engineer starts working on it, its status changes to \
in progress, and when the problem is fixed it becomes resolved. You can check the status of a \
ticket at any time with its ticket number. If a resolved problem comes back, open a new ticket \
and mention the number of the earlier one.

Standard equipment. Every employee receives a laptop, a headset, a keyboard, a mouse and one \
external monitor. Laptops are replaced every three years, or earlier when they fail. Requests for \
non-standard hardware, such as a second monitor or a specialised device, are made as hardware \
tickets and need your manager's approval.

Software. Approved software can be installed from the self-service portal without a ticket. Paid \
licences and software that is not yet approved need a software ticket; IT checks security and \
licensing before installing it, which can take up to two weeks.

Leaving the company. Return all equipment on your last day. Accounts are disabled at the end of \
your last working day.
"""),
    ("code-of-conduct", "Code of Conduct", """\
Our Code of Conduct describes how we treat each other, our customers and our partners. It applies \
to everyone who works for or on behalf of the company, in the office, at client sites, at \
company events and online.

Respect and inclusion. We treat everyone with dignity and respect. Harassment, bullying, \
intimidation and discrimination on the basis of gender, age, ethnicity, religion, disability, \
sexual orientation or any other characteristic are not tolerated. This includes unwelcome \
comments, jokes and messages, whether in person or in chat channels.

Conflicts of interest. Avoid situations where your personal interests could conflict with the \
interests of the company, such as hiring or managing a close relative, holding a significant \
stake in a supplier or competitor, or taking on a second job that competes with your work. \
Declare any potential conflict to your manager and HR in writing; most conflicts can be managed \
once they are known.

Gifts and hospitality. You may accept or offer modest gifts and hospitality with a value of up \
to 50 EUR that are usual in business and do not create an obligation. Cash, vouchers and gifts \
during a tender or negotiation are never acceptable. Anything above 50 EUR must be declared to \
the Legal team, which keeps the gifts register.

Anti-bribery and fair competition. We never offer, pay, request or accept bribes or facilitation \
payments, directly or through third parties. We do not agree prices or share markets with \
competitors, and we compete on the merits of our products and services.

Confidentiality and data protection. Protect confidential information and personal data as \
described in the information security policy, during and after your employment. Speak about the \
company in public and on social media only in a personal capacity, and never share confidential \
information.

Speaking up. If you see or suspect a breach of this Code, raise it with your manager, HR, Legal \
or through the confidential speak-up line, which also accepts anonymous reports. Every report is \
investigated promptly and fairly. Retaliation against anyone who raises a concern in good faith \
is itself a serious breach of this Code.

Consequences. Breaches of the Code can lead to disciplinary action up to and including dismissal, \
and in some cases to legal consequences. All employees acknowledge the Code when they join and \
complete the code of conduct refresher every two years.
"""),
    ("training-budget", "Training Budget and Learning", """\
The company invests in the growth of every employee. Learning happens mostly on the job, but \
courses, certifications and conferences play an important part, and each employee has a personal \
budget and time for them.

Your learning budget. Every employee has a learning budget of 2,500 EUR per calendar year and up \
to five learning days, agreed with their manager. Unused budget does not carry over into the \
next year. Part-time employees receive the full budget and a pro-rata number of learning days.

Internal courses. The training catalogue in the HR assistant lists the internal courses that \
start in the coming months, with topics such as security, leadership, Python, data and \
communication. Internal courses are free and do not use your budget. Places are limited and \
allocated on a first come, first served basis: enrol in the HR assistant, and you will see at \
once whether a seat was still available. Courses that have already started cannot be joined. If \
you can no longer attend, tell the trainer at least five working days before the start so that \
your seat can go to a colleague.

External training. Courses, certifications and conferences from external providers are paid from \
your budget. Agree them with your manager before you book, then claim the cost as a training \
expense with the invoice attached; a single training claim may not exceed 2,500 EUR. Travel to \
an external course is claimed under the business travel rules.

Study leave. For a recognised qualification such as a professional certification or a degree \
related to your role, you can request up to five additional days of paid study leave per year \
for exams and exam preparation. Apply through HR with a short description of the programme.

Repayment. If the company pays more than 1,500 EUR for a single qualification and you resign \
within 12 months of completing it, a pro-rata share of the cost has to be repaid. This is agreed \
in writing before the training starts.

Mandatory training. Some courses are required for everyone: the security awareness course every \
year, and the code of conduct course when you join and every two years after that. Managers also \
complete the leadership essentials course within six months of their first management role.
"""),
    ("working-hours", "Working Hours, Overtime and Time Off in Lieu", """\
A full-time working week at the company is 40 hours, usually worked from Monday to Friday. Within \
that framework we trust employees to organise their time in a way that suits their work and \
their life.

Flexible hours and core hours. You may start work between 07:00 and 10:00 and finish between \
16:00 and 20:00, as long as you are available during core hours from 10:00 to 16:00 and your \
team's needs are covered. Short absences during core hours, for example for an appointment, are \
fine when agreed with your team. Customer-facing teams work in shifts set by their managers.

Breaks and rest. Take a break of at least 30 minutes after six hours of work, and at least 45 \
minutes after nine hours. There must be at least 11 consecutive hours of rest between two working \
days. Nobody is expected to read or answer work messages in the evening, at weekends or during \
leave; use scheduled sending if you work at unusual times.

Overtime. Occasional extra hours are part of professional life, but regular overtime is a sign \
that workload or planning needs attention. Overtime of more than two hours in a week must be \
approved by your manager in advance, except in emergencies. Approved overtime is compensated with \
time off in lieu at a rate of one hour for each hour worked, or one and a half hours for work on \
weekends and public holidays.

Time off in lieu. Time off in lieu must be taken within three months after the overtime was \
worked, in agreement with your manager. It is recorded in the team calendar and does not reduce \
your annual leave balance. Time off in lieu that has not been taken within three months lapses, \
unless your manager asked you to postpone it.

On-call duty. Employees in teams that provide round-the-clock support may be on call according to \
a published rota. On-call duty is paid with an allowance of 150 EUR per week, and time spent \
working during an on-call shift counts as overtime.

Part-time work. You can ask to reduce your hours or change your working pattern at any time after \
your probation period. Your manager will discuss the request with you and answer in writing \
within four weeks. Salary, leave entitlement and most benefits are adjusted pro rata.
"""),
    ("payroll", "Pay, Payslips and Tax", """\
This section explains when and how you are paid and where to find your payslips.

Pay day. Salaries are paid monthly in EUR, on the 25th of each month, or on the last working day \
before the 25th when it falls on a weekend or public holiday. The salary for a month is paid in \
that same month, so a new employee receives a first salary at the end of the month in which they \
joined.

Payslips. A payslip is issued for every monthly salary payment and is available in the HR \
assistant from the pay date onwards. Payslips for the current month therefore appear only once \
that month's salary has been paid. Each payslip shows your gross salary, the income tax and \
social contributions withheld, and the net amount paid to your bank account. Payslips of the \
last seven years remain available; older payslips can be requested from the payroll team.

Salary and salary reviews. Your gross monthly salary is set in your contract and depends on your \
role and experience. Salaries are reviewed once a year; adjustments take effect on 1 January and \
are visible on the January payslip. Promotions during the year take effect from the first day of \
the month after the promotion is confirmed.

Tax and deductions. Income tax and social contributions are withheld at source according to the \
law of your country of employment and your personal tax details. Annual tax statements are \
provided in February for the previous calendar year. If your tax situation changes, for example \
because of marriage or the birth of a child, inform the payroll team so that your withholding can \
be updated.

Expense reimbursements. Approved expense claims are reimbursed with the next salary run. They are \
paid together with your salary but listed separately and are not part of your gross salary.

Bank details. Changes to your bank details must reach the payroll team by the 10th of the month \
to be used for that month's payment. For your security, changes are confirmed through a second \
channel; payroll will never ask you to change bank details by email.

Mistakes. Please check your payslip every month. If something looks wrong, contact the payroll \
team within 30 days. Underpayments are corrected with the next salary run at the latest; \
overpayments are recovered in agreement with you, in instalments if needed.
"""),
    ("meeting-rooms", "Meeting Rooms and Office Facilities", """\
Our offices are designed for collaboration as well as for focused work. This section explains how \
to book meeting rooms and use the shared facilities.

Booking meeting rooms. Meeting rooms are booked through the HR assistant. Search for the date, \
start and end time and the number of attendees, and the assistant lists the rooms that are large \
enough and free for the whole period, smallest first. Please book the smallest room that fits \
your group, so that larger rooms remain available for larger meetings. Bookings can only be made \
for today or future dates, with times given on the 24-hour clock.

Cancelling bookings. If a meeting is cancelled or moves, cancel the room booking straight away \
with its booking number so colleagues can use the room. Rooms that stay empty for 15 minutes \
after the start of a booking may be released by reception. Repeatedly unused bookings are \
followed up by the facilities team.

Rooms and equipment. The offices have meeting rooms for two to thirty people on four floors. \
All rooms for four or more people have a screen and video conferencing equipment; the large \
room on the top floor is used for all-hands meetings and training sessions and has a microphone \
and a projector. Report broken equipment to the IT service desk as a hardware ticket.

Quiet areas and phone booths. Quiet areas are for focused work: keep calls and conversations \
out of them. Phone booths cannot be booked; please use them for no longer than an hour at a \
time.

Opening hours and access. The offices are open from 07:00 to 21:00 on working days. Your badge \
gives access to the floors you need; lost badges must be reported to reception immediately. \
Visitors are registered at reception by their host and must be accompanied at all times.

Kitchens and lockers. Kitchens on every floor offer free coffee, tea and fruit. Please clean up \
after yourself and empty the fridge of your own food every Friday. Lockers for personal \
belongings are available on a day-by-day basis; items left in lockers overnight are removed.

Health and safety. Know the emergency exits and assembly point of your floor. Fire drills are \
held twice a year. First aiders are listed next to each kitchen. Report accidents and hazards to \
the facilities team on the same day.
"""),
    ("onboarding", "Onboarding for New Joiners", """\
Welcome to the company. Your first weeks are about getting to know your team, your role and the \
way we work. This section explains what to expect and what we expect from you.

Your onboarding checklist. Every new joiner has an onboarding checklist in the HR assistant. It \
lists the tasks to complete in your first weeks, such as signing your contract, setting up your \
laptop and accounts, submitting your bank details for payroll, completing the security \
awareness course, reading this handbook and meeting your buddy. Mark each task as done in the \
HR assistant when you have completed it, so your manager and HR can see your progress. If a task \
does not apply to you, talk to HR rather than marking it done.

Your first day. Your manager or buddy meets you at reception. You receive your badge and your \
laptop, set up your accounts with the IT service desk and join a welcome session that introduces \
the company, its products and its policies. Bring an identity document and your bank details.

Your buddy. Every new joiner is paired with a buddy from a neighbouring team: an experienced \
colleague who is not your manager and who can answer the everyday questions that are not written \
down anywhere. Plan to meet your buddy at least once a week during your first two months.

Check-ins. Your manager schedules check-ins after 30, 60 and 90 days to agree your goals, give \
feedback and hear how your onboarding is going. Use them to raise anything that is unclear or \
that could be improved for future joiners.

Probation. The probation period is six months, unless your contract says otherwise. During \
probation the notice period for both sides is two weeks. At the end of the period your manager \
confirms your employment in writing after a review conversation.

Mandatory training. Complete the security awareness course within your first month and the code \
of conduct course within your first two months. The training catalogue in the HR assistant \
shows the upcoming dates of both.

Questions. For questions about pay, leave or benefits contact HR; for laptops, accounts and \
access open an IT ticket; for anything else, your buddy is a good place to start.
"""),
]

# (date, title, body), newest last; none after the scenario's TODAY (2026-06-01).
ANNOUNCEMENTS: list[tuple[str, str, str]] = [
    ("2025-12-01", "Office closure between the holidays",
     "The offices will be closed from 24 December to 1 January. The IT service desk runs an "
     "on-call service for high priority incidents only during this period. Please plan your "
     "annual leave accordingly and remember that up to five unused days can be carried over "
     "into next year, to be used by 31 March."),
    ("2025-12-10", "Salary review results on the January payslip",
     "The annual salary review has been completed. Adjustments take effect on 1 January and "
     "will be visible on your January payslip, paid on 23 January because the 25th falls on a "
     "Sunday. Your manager will share your individual outcome with you before the end of the "
     "year."),
    ("2026-01-08", "New learning budget for 2026",
     "Every employee's learning budget for 2026 is 2,500 EUR, with up to five learning days. "
     "External courses and conferences are claimed as training expenses with the invoice "
     "attached. The internal training catalogue for the first half of the year is now available "
     "in the HR assistant."),
    ("2026-01-20", "Multi-factor authentication for all systems",
     "From 2 February, multi-factor authentication is required for every company system, "
     "including the HR assistant and the expense tool. If you have not registered a second "
     "factor yet, please do so now. Problems signing in can be reported as IT tickets in the "
     "access category."),
    ("2026-02-03", "Annual tax statements available",
     "Annual tax statements for 2025 are now available from the payroll team. Please check them "
     "carefully and contact payroll within 30 days if anything looks wrong, for example after a "
     "change in your personal tax situation during the year."),
    ("2026-02-16", "Phishing wave targeting payroll changes",
     "We are seeing emails that pretend to come from the payroll team and ask employees to "
     "update their bank details through a link. Payroll never asks for bank details by email. "
     "Use the Report Phishing button, and if you clicked a link, change your password and open a "
     "high priority access ticket right away."),
    ("2026-03-02", "Reminder: carried-over leave expires on 31 March",
     "Annual leave days carried over from last year must be taken by 31 March, after which they "
     "lapse. Check your balance in the HR assistant and submit your requests in good time so "
     "your manager can approve them."),
    ("2026-03-12", "Hybrid work survey results",
     "Thank you to the 78 percent of colleagues who answered the hybrid work survey. Most teams "
     "are happy with two office days a week and a fixed anchor day. Based on your feedback we "
     "will add more quiet areas and phone booths on floors two and three over the summer."),
    ("2026-03-25", "Parental leave now 20 paid days for every parent",
     "From 1 April, the company parental leave increases to 20 working days of fully paid leave "
     "for every parent, regardless of gender or length of service, in addition to statutory "
     "leave. It can be taken within 12 months of a birth or placement, in up to four blocks."),
    ("2026-04-01", "New expense categories and limits",
     "Expense claims now use five categories with a limit per claim: travel 2,000 EUR, meals "
     "75 EUR, equipment 1,500 EUR, training 2,500 EUR and other 300 EUR. Receipts are always "
     "needed for equipment and training, and for other categories above 25 EUR."),
    ("2026-04-14", "Video conferencing upgrade in meeting rooms",
     "All meeting rooms for four or more people now have new screens and video conferencing "
     "bars. If something does not work, please report it to the IT service desk as a hardware "
     "ticket and mention the room name."),
    ("2026-04-22", "Spring all-hands meeting",
     "The spring all-hands meeting takes place on 7 May at 15:00 in the large room on the fourth "
     "floor and online. The leadership team will present the results of the first quarter and "
     "the plans for the second half of the year, followed by questions and drinks."),
    ("2026-05-04", "Security awareness course: new dates",
     "The annual security awareness course is mandatory for everyone. New sessions have been "
     "added for June, July and September. Enrol in the HR assistant; seats are limited and "
     "allocated first come, first served. New joiners complete the course in their first month."),
    ("2026-05-11", "Travel desk opening hours extended",
     "The corporate travel desk is now reachable from 07:00 to 20:00 on working days. Remember "
     "that every business trip needs your manager's approval before booking, and that flights "
     "and hotels booked through the desk are paid directly and are never claimed as expenses."),
    ("2026-05-18", "Whit Monday office closure",
     "The offices are closed on Whit Monday, 25 May. The May salary will be paid on Friday, "
     "22 May instead. Payslips for May will be available in the HR assistant from that day."),
    ("2026-05-20", "Leadership essentials course for new managers",
     "A new cohort of the leadership essentials course starts in June. All managers who took on "
     "their first management role in the last six months are expected to attend. Enrol in the "
     "HR assistant while seats are available."),
    ("2026-05-26", "Summer party on 3 July",
     "Save the date: our summer party takes place on Friday 3 July from 17:00 at the riverside "
     "terrace. Partners and children are welcome. Please register by 19 June so we can plan "
     "food and drinks, and let us know about any dietary requirements."),
    ("2026-05-28", "IT service desk maintenance window",
     "The ticketing system will be unavailable on Saturday 6 June between 08:00 and 12:00 for "
     "maintenance. Tickets created before the window are not affected. In an emergency during "
     "the window, call the on-call engineer."),
    ("2026-05-29", "Reminder: book summer leave early",
     "Many colleagues plan their summer holidays now. Please submit your annual leave requests "
     "for July and August before 15 June so managers can ensure cover in every team. Requests "
     "for more than two weeks need at least six weeks of notice."),
    ("2026-06-01", "Welcome to our new joiners",
     "A warm welcome to everyone who joined us in the last months. Your onboarding checklist is "
     "in the HR assistant: please keep it up to date and mark tasks as done when you complete "
     "them. Your buddy and HR are happy to help with any questions."),
]
